"""app/redact.py: the credentials of a URL masked wherever it is shown, and which of its parts are secrets."""

from __future__ import annotations

import pytest

from app.redact import mask_credentials, url_secrets


@pytest.mark.parametrize("shown, masked", [
    ("rtsp://admin:S3cret@192.168.1.20:554/Streaming/Channels/101",
     "rtsp://***@192.168.1.20:554/Streaming/Channels/101"),
    ("rtsps://viewer@cam.local/live", "rtsps://***@cam.local/live"),
    ("http://cam.local/videostream.cgi?user=admin&pwd=secret", "http://cam.local/videostream.cgi?user=***&pwd=***"),
    ("http://admin:S3cretUser@127.0.0.1:8080/videostream.cgi?user=admin&pwd=S3cretQuery&token=S3cretTok&rate=0",
     "http://***@127.0.0.1:8080/videostream.cgi?user=***&pwd=***&token=***&rate=0"),
    # what cameras and services name their credentials, in any case and spelling
    ("http://cam/cgi-bin/CGIStream.cgi?cmd=GetMJStream&usr=admin&PWD=x", "http://cam/cgi-bin/CGIStream.cgi?cmd=GetMJStream&usr=***&PWD=***"),
    ("http://cam/?loginuse=admin&loginpas=x&Password1=y", "http://cam/?loginuse=***&loginpas=***&Password1=***"),
    ("https://api/x?x-api-key=a&apikey=b&api_key=c&key=d", "https://api/x?x-api-key=***&apikey=***&api_key=***&key=***"),
    ("https://h/p?access_token=a&Authorization=b&auth=c&sig=d&signature=e&secret=f&passwd=g&login=h&username=i",
     "https://h/p?access_token=***&Authorization=***&auth=***&sig=***&signature=***&secret=***&passwd=***&login=***"
     "&username=***"),
    ("https://bucket.s3/x?X-Amz-Credential=AK%2F1&X-Amz-Signature=abc&X-Amz-Security-Token=t&X-Amz-Expires=60",
     "https://bucket.s3/x?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Security-Token=***&X-Amz-Expires=60"),
    # ;-separated parameters, in the query and in the path, and the fragment
    ("http://cam/snap.cgi?chan=1;user=admin;pwd=x", "http://cam/snap.cgi?chan=1;user=***;pwd=***"),
    ("http://cam/live;jsessionid=abc;pwd=x/stream", "http://cam/live;jsessionid=***;pwd=***"),
    ("https://hook/in#access_token=abc&state=2", "https://hook/in#access_token=***&state=2"),
    # IPv6 hosts, with a zone and a port
    ("rtsp://admin:pw@[fe80::1%25eth0]:554/s?token=t", "rtsp://***@[fe80::1%25eth0]:554/s?token=***"),
    ("http://[::1]:8080/mjpg?pwd=x&fps=5", "http://[::1]:8080/mjpg?pwd=***&fps=5"),
    # percent-encoded secrets and names; characters that should have been encoded and were not
    ("rtsp://adm%40in:p%3Ass%40word@cam/s", "rtsp://***@cam/s"),
    ("http://cam/x?p%61ssword=S%26cret%3D1&q=1", "http://cam/x?p%61ssword=***&q=1"),
    ("rtsp://admin:pa@ss/w?rd#1@cam.local/stream", "rtsp://***@cam.local/stream"),
    # an empty value has nothing to hide; parameters that are no credential stay
    ("http://cam/x?pwd=&channel=1&subtype=0", "http://cam/x?pwd=&channel=1&subtype=0"),
    ("HTTP://Cam.Local/X?Token=t", "HTTP://Cam.Local/X?Token=***"),
])
def test_credentials_in_a_url_are_masked(shown, masked):
    assert mask_credentials(shown) == masked


@pytest.mark.parametrize("text", [
    "/dev/video0", "0", "clip.mp4", "pattern", "auto", "picamera2", "images/*.jpg", "Pi camera (picamera2)",
    "test pattern 320x240 at 15 fps", "user=admin&pwd=secret (not a URL)", "rtsp://cam.local:554/stream1",
    "http://cam.local/mjpg/video.mjpg?resolution=640x480&fps=10", "udp.target 10.0.0.2:5600 does not resolve", "",
])
def test_what_carries_no_credential_passes_unchanged(text):
    assert mask_credentials(text) == text


def test_urls_inside_a_longer_text_are_masked_and_the_text_kept():
    """A masked value runs to the next space: the `:` after it in the sentence goes with it (never a secret's last
    character left showing)."""
    error = ("cannot open rtsp://u:p4ss@10.0.0.5:554/h264?token=T0k: check that it plays in `ffplay URL`; "
             "also tried 'http://admin:S3cret@10.0.0.5/videostream.cgi?user=admin&pwd=Qu3ry' and "
             "\"https://h/x?sig=S1g\"\nthen gave up")
    assert mask_credentials(error) == (
        "cannot open rtsp://***@10.0.0.5:554/h264?token=*** check that it plays in `ffplay URL`; "
        "also tried 'http://***@10.0.0.5/videostream.cgi?user=***&pwd=***' and \"https://h/x?sig=***\"\n"
        "then gave up")


def test_masking_twice_changes_nothing_more():
    once = mask_credentials("rtsp://a:b@h/s?pwd=c and http://h/?token=d")
    assert mask_credentials(once) == once


@pytest.mark.parametrize("url, secrets", [
    ("rtsp://admin:S3cret@cam/s", ["S3cret"]),
    ("https://T0kenAsUser@hooks.example/x", ["T0kenAsUser"]),
    ("http://cam/v.cgi?user=admin&pwd=Qu3ry&token=T0k&channel=1", ["Qu3ry", "T0k"]),  # a user name is no secret
    ("http://admin:${CAM_PASSWORD}@cam/v.cgi?user=admin&pwd=${cred:cam_pwd}", ["${CAM_PASSWORD}", "${cred:cam_pwd}"]),
    ("http://admin@cam/x?username=admin&pwd=", ["admin"]),
    ("rtsp://cam.local/stream?channel=1", []),
    ("/dev/video0", []),
])
def test_url_secrets_are_what_a_url_holds_that_others_must_not_read(url, secrets):
    assert url_secrets(url) == secrets
