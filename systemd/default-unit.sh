#!/bin/sh
# Prints smartcam.service, the default service (pipeline detect), made from the one unit file, smartcam@.service:
# the instance is detect, and the journal name and the env file are the default service's own (smartcam,
# /etc/smartcam/smartcam.env). install.sh --service installs what it prints: change smartcam@.service, not this.
set -eu
sed -e '1c\
# smartcam: the default pipeline (detect) as a service; with cameras: in config.yaml, every camera listed there,\
# in this one process (detect for an entry that names no pipeline). One instance per pipeline instead: smartcam@.service.\
# Made by install.sh from smartcam@.service (systemd/default-unit.sh in the project): edit that one.' \
    -e '/^# The one unit file: /d' -e '/^# Per instance, /d' \
    -e 's/smartcam@face/smartcam/g' -e 's/smartcam@NAME/smartcam/g' -e 's/smartcam-%i/smartcam/' \
    -e 's|/etc/smartcam/%i\.env|/etc/smartcam/smartcam.env|g' -e 's/%i/detect/g' \
    "$(dirname "$0")/smartcam@.service"
