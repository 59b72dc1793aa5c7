"""Camera adapters and the feed: frames as arrays, loss noticed, recovery without a restart."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.adapters.camera_files import FilesCamera
from edge.adapters.camera_opencv import OpenCVCamera
from edge.adapters.camera_picamera2 import Picamera2Camera, is_usable
from edge.camera import CameraFeed
from edge.config import SAMPLE_SCENES
from edge.errors import HardwareUnavailable
from edge.events import EventBus
from tests.conftest import wait_for


def test_files_camera_plays_a_folder_in_order_and_loops(tmp_path: Path) -> None:
    for i, value in enumerate((10, 20, 30)):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((48, 64, 3), value, np.uint8))
    camera = FilesCamera(tmp_path)
    camera.open()
    seen = [int(camera.read()[0, 0, 0]) for _ in range(5)]
    assert seen == [10, 20, 30, 10, 20]
    assert camera.read().shape == (48, 64, 3)


def test_files_camera_without_source_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(HardwareUnavailable, match="not there"):
        FilesCamera(tmp_path / "missing").open()
    (tmp_path / "empty").mkdir()
    with pytest.raises(HardwareUnavailable, match="no images"):
        FilesCamera(tmp_path / "empty").open()


def test_bundled_scenes_are_playable() -> None:
    camera = FilesCamera(SAMPLE_SCENES)
    camera.open()
    frames = [camera.read() for _ in range(3)]
    assert all(f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3 for f in frames)


def test_opencv_camera_reads_a_video_file(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(5):
        writer.write(np.full((120, 160, 3), i * 40, np.uint8))
    writer.release()
    camera = OpenCVCamera(str(video), width=160, height=120, fps=10)
    camera.open()
    frames = [camera.read() for _ in range(5)]
    assert [f.shape for f in frames] == [(120, 160, 3)] * 5
    assert frames[4].mean() > frames[1].mean()  # the clip's frames, in order
    with pytest.raises(HardwareUnavailable, match="gave no frame"):
        camera.read()  # end of the clip behaves like an unplugged webcam
    camera.close()
    with pytest.raises(HardwareUnavailable, match="no video device"):
        OpenCVCamera(str(tmp_path / "none.avi"), width=160, height=120, fps=10).open()


def test_picamera2_off_pi_says_why() -> None:
    usable, why = is_usable()
    if usable:
        pytest.skip("picamera2 is importable here (a Pi): covered by hardware tests")
    assert "python3-picamera2" in why
    with pytest.raises(HardwareUnavailable, match="picamera2"):
        Picamera2Camera(width=640, height=480, fps=10).open()


def test_feed_reports_loss_and_recovers_when_the_source_returns(tmp_path: Path) -> None:
    scenes = tmp_path / "scenes"
    shutil.copytree(SAMPLE_SCENES, scenes)
    bus = EventBus()
    bus.start()
    feed = CameraFeed(FilesCamera(scenes), bus=bus, fps=30, retry_s=(0.05, 0.2))
    feed.start()
    try:
        wait_for(lambda: feed.state().state == "streaming")
        assert feed.wait_frame(2.0) is not None
        hidden = tmp_path / "unplugged"
        scenes.rename(hidden)  # the "cable" is pulled
        wait_for(lambda: feed.state().state == "lost")
        assert feed.latest() is None
        assert "not there" in feed.state().detail
        hidden.rename(scenes)
        wait_for(lambda: feed.state().state == "streaming")
        assert feed.wait_frame(2.0) is not None
        bus.drain()
        kinds = [e.kind for e in bus.recent("camera.")]
        assert kinds == ["camera.lost", "camera.recovered"]
    finally:
        feed.stop()
        bus.stop()
