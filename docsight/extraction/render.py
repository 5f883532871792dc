"""Vector pictures (EMF, WMF, SVG) to PNG with LibreOffice in headless mode.

One ``soffice --convert-to png`` call renders every vector picture of a document (LibreOffice
takes a second or two to start; per picture that would add up). Each call gets a throwaway
profile that turns macros off and never updates links, runs in its own process group and is
killed whole when it overruns its time. Without LibreOffice (``libreoffice_command`` gives None)
the callers list those pictures as skipped with a reason.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from PIL import Image, ImageChops

_log = logging.getLogger(__name__)

WMF_PLACEABLE = b"\xd7\xcd\xc6\x9a"
EMF_SIGNATURE = b" EMF"  # at offset 40 of the EMR_HEADER record
CROP_PADDING_PX = 8

# Macros off, links never updated: a document's pictures must not reach out or run code.
PROFILE_SETTINGS = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
 <item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
 <item oor:path="/org.openoffice.Office.Writer/Content/Update"><prop oor:name="Link" oor:op="fuse"><value>0</value></prop></item>
 <item oor:path="/org.openoffice.Office.Calc/Content/Update"><prop oor:name="Link" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""

_SVG_START = re.compile(rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!DOCTYPE[^>]*>\s*)?<svg[\s>]", re.DOTALL | re.I)
# href/src to anything but an in-document anchor or inline data: LibreOffice would try to load it
_SVG_EXTERNAL = re.compile(rb"""(?:href|src)\s*=\s*["'](?!#|data:)""", re.I)


def vector_kind(data: bytes) -> str | None:
    """"emf", "wmf" or "svg" for the vector formats LibreOffice renders, else None."""
    if data[:4] == WMF_PLACEABLE:
        return "wmf"
    if data[40:44] == EMF_SIGNATURE and data[:4] == b"\x01\x00\x00\x00":
        return "emf"
    if data[:2] in (b"\x01\x00", b"\x02\x00") and data[2:4] == b"\x09\x00":
        return "wmf"  # a WMF without the placeable header
    if _SVG_START.match(data[:4096]):
        return "svg"
    return None


def svg_is_self_contained(data: bytes) -> bool:
    return _SVG_EXTERNAL.search(data) is None


def libreoffice_command(setting: str) -> str | None:
    """The LibreOffice executable the setting names (a command on PATH or a path), or None."""
    setting = (setting or "").strip()
    if not setting:
        return None
    if os.sep in setting:
        path = Path(setting)
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(setting)


def crop_to_content(image: Image.Image, padding: int = CROP_PADDING_PX) -> Image.Image | None:
    """The drawing without the blank page around it (LibreOffice exports the whole page); None if blank."""
    rgb = image.convert("RGB")
    background = Image.new("RGB", rgb.size, rgb.getpixel((0, 0)))
    box = ImageChops.difference(rgb, background).getbbox()
    if box is None:
        return None
    left, top, right, bottom = box
    return rgb.crop((max(0, left - padding), max(0, top - padding),
                     min(rgb.width, right + padding), min(rgb.height, bottom + padding)))


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(os.getpgid(process.pid), signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        process.kill()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class RenderError(Exception):
    """LibreOffice could not be run or did not finish."""


def render_pngs(pictures: dict[str, tuple[bytes, str]], command: str, timeout_seconds: float) -> dict[str, bytes]:
    """``{name: (bytes, "emf"|"wmf"|"svg")}`` to ``{name: PNG bytes}`` for the pictures LibreOffice rendered.

    Raises RenderError when LibreOffice cannot be started or overruns ``timeout_seconds``;
    a picture it could not render is simply absent from the result.
    """
    if not pictures:
        return {}
    workdir = Path(tempfile.mkdtemp(prefix="docsight-render-"))
    try:
        inputs, outputs = workdir / "in", workdir / "out"
        inputs.mkdir()
        outputs.mkdir()
        (workdir / "profile" / "user").mkdir(parents=True)
        (workdir / "profile" / "user" / "registrymodifications.xcu").write_text(PROFILE_SETTINGS, encoding="utf-8")
        files = {}
        for number, (name, (data, suffix)) in enumerate(pictures.items()):
            path = inputs / f"p{number}.{suffix}"
            path.write_bytes(data)
            files[name] = path
        argv = [command, f"-env:UserInstallation={(workdir / 'profile').as_uri()}", "--headless", "--norestore",
                "--nologo", "--nolockcheck", "--nodefault", "--convert-to", "png", "--outdir", str(outputs),
                *map(str, files.values())]
        try:
            process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True, cwd=workdir)
        except OSError as error:
            raise RenderError(f"LibreOffice ({command}) could not be started: {error.strerror or error}") from None
        try:
            process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise RenderError(f"LibreOffice did not finish rendering {len(files)} pictures in {timeout_seconds:.0f} s")
        rendered: dict[str, bytes] = {}
        for name, path in files.items():
            png = outputs / f"{path.stem}.png"
            if not png.is_file():
                continue
            try:
                with Image.open(png) as image:
                    cropped = crop_to_content(image)
            except OSError:
                continue
            if cropped is None:
                continue
            buffer = io.BytesIO()
            cropped.save(buffer, "PNG")
            rendered[name] = buffer.getvalue()
        return rendered
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
