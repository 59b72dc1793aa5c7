"""One module per backend; vendor libraries are imported lazily inside each adapter.

The builders here pick the backend a config names (real or simulated); the daemon, the CLI and
provisioning's hardware test all build their parts through them."""

from __future__ import annotations

from edge import config as cfg
from edge.adapters import printer_escpos
from edge.adapters.camera_files import FilesCamera
from edge.adapters.camera_opencv import OpenCVCamera
from edge.adapters.camera_picamera2 import Picamera2Camera
from edge.adapters.printer_sim import SimulatedPrinter
from edge.adapters.speech_espeak import EspeakSpeech, WavSpeech
from edge.adapters.speech_off import SilentSpeech
from edge.ports.camera import Camera
from edge.ports.printer import PrinterTransport
from edge.ports.speech import Speech


def build_camera(camera: cfg.CameraSection) -> Camera:
    match camera:
        case cfg.FilesCamera():
            return FilesCamera(camera.path or cfg.SAMPLE_SCENES, loop=camera.loop)
        case cfg.OpenCVCamera():
            return OpenCVCamera(
                camera.device, width=camera.width, height=camera.height, fps=camera.fps
            )
        case cfg.Picamera2Camera():
            return Picamera2Camera(width=camera.width, height=camera.height, fps=camera.fps)
    raise AssertionError(f"unhandled camera type {camera!r}")


def build_printer(config: cfg.Config, *, plug_in: bool = True) -> PrinterTransport:
    """plug_in=False: no I/O; the caller plugs a simulated printer in (App.start)."""
    printer = config.printer
    match printer:
        case cfg.SimulatedPrinter():
            simulated = SimulatedPrinter(printer.output_dir or config.storage.state_dir / "printer")
            if plug_in:
                simulated.plug_in()  # creates its output folder, as connecting a printer would
            return simulated
        case cfg.UsbPrinter():
            return printer_escpos.usb(printer.vendor_id, printer.product_id, printer.profile)
        case cfg.SerialPrinter():
            return printer_escpos.serial(printer.device, printer.baudrate, printer.profile)
        case cfg.NetworkPrinter():
            return printer_escpos.network(
                printer.host, printer.port, printer.timeout_s, printer.profile
            )
        case cfg.FilePrinter():
            return printer_escpos.device_file(printer.path, printer.profile)
    raise AssertionError(f"unhandled printer type {printer!r}")


def build_speech(config: cfg.Config) -> Speech:
    """No I/O: the speech part checks its programs and folder when it starts."""
    speech = config.speech
    match speech.adapter:
        case "espeak":
            return EspeakSpeech(
                enabled=speech.enabled, volume=speech.volume, rate=speech.rate, device=speech.device
            )
        case "wav":
            return WavSpeech(
                speech.folder or config.storage.state_dir / "speech",
                enabled=speech.enabled,
                volume=speech.volume,
                rate=speech.rate,
            )
        case "off":
            return SilentSpeech(volume=speech.volume)
    raise AssertionError(f"unhandled speech adapter {speech.adapter!r}")
