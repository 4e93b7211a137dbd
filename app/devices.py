"""What hardware this board has for smartcam: cameras (V4L2 nodes, Pi cameras) and Edge TPUs (USB, PCIe).

Read from sysfs and /dev so it needs no extra tools, and takes the roots as arguments so tests can point it at
a folder laid out like them. Backs `python -m app devices`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: the Coral USB Accelerator: before its firmware is loaded (Global Unichip) and after (Google)
CORAL_USB_IDS = {("1a6e", "089a"): "Coral USB Accelerator (firmware not loaded yet)",
                 ("18d1", "9302"): "Coral USB Accelerator"}


#: V4L2 nodes a Raspberry Pi has that are its codec, ISP or camera front end, not cameras to open with V4L2
PI_MEDIA_NODES = ("bcm2835-codec", "bcm2835-isp", "rpi-hevc-dec", "pispbe", "rp1-cfe", "unicam")


@dataclass(frozen=True)
class Device:
    kind: str  # camera | edgetpu
    path: str  # what to write in config.yaml: camera.source or accelerator
    name: str


def v4l2_cameras(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> list[Device]:
    """V4L2 capture nodes with their driver's name (sysfs video4linux/videoN/name)."""
    devices = []
    for node in sorted((sys_root / "class" / "video4linux").glob("video*"), key=lambda p: int(p.name[5:] or 0)):
        name_file = node / "name"
        name = name_file.read_text().strip() if name_file.is_file() else "unknown"
        devices.append(Device("camera", str(dev_root / node.name), name))
    return devices


def v4l2_capture_cameras(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> list[Device]:
    """The V4L2 nodes worth opening as a camera (USB webcams and the like), without a Pi's media hardware."""
    return [d for d in v4l2_cameras(sys_root, dev_root) if not d.name.startswith(PI_MEDIA_NODES)]


def edgetpus(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> list[Device]:
    """Coral Edge TPUs on USB (by vendor and product id) and PCIe (/dev/apex_N)."""
    found = []
    usb_index = 0
    for usb in sorted((sys_root / "bus" / "usb" / "devices").glob("*")):
        ids = tuple((usb / f).read_text().strip() if (usb / f).is_file() else "" for f in ("idVendor", "idProduct"))
        if ids in CORAL_USB_IDS:
            found.append(Device("edgetpu", f"edgetpu:usb:{usb_index}", f"{CORAL_USB_IDS[ids]} at USB {usb.name}"))
            usb_index += 1
    for apex in sorted(dev_root.glob("apex_*")):
        found.append(Device("edgetpu", f"edgetpu:pci:{apex.name[5:]}", f"Coral PCIe/M.2 Edge TPU ({apex})"))
    return found
