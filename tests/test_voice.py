"""Voice: the shipped recordings, playback on SDL's dummy audio, and running on without a device."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pygame
import pytest

from hcp.agent.events import Sound
from hcp.ui.settings import VoiceSection
from hcp.ui.voice import SHIPPED, SPOKEN, Voice

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_voice.py"


def load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_voice", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def voice() -> Iterator[Voice]:
    player = Voice(VoiceSection(volume=0.5))
    yield player
    player.close()


@pytest.mark.parametrize("sound", list(Sound))
def test_every_sound_is_shipped(sound: Sound) -> None:
    with wave.open(str(SHIPPED / f"{sound.value}.wav")) as recording:
        seconds = recording.getnframes() / recording.getframerate()
    assert 0.05 < seconds < 10


def test_spoken_texts_are_the_policy_prompts() -> None:
    assert SPOKEN[Sound.PLEASE_RATE] == "请您对本次服务进行评价"
    assert SPOKEN[Sound.THANKS] == "感谢您的评价"
    assert SPOKEN[Sound.HALL_QUESTION] == "请您对大厅整体服务进行评价"
    assert "不满意的原因" in SPOKEN[Sound.ASK_REASON]


def test_plays_on_dummy_audio(voice: Voice) -> None:
    assert voice.open()
    assert voice.is_available
    for sound in Sound:
        voice.play(sound)
    assert pygame.mixer.Channel(0).get_busy() or pygame.mixer.Channel(1).get_busy()
    assert voice.open()  # opening again is harmless


def test_no_audio_device_runs_on_with_one_log_line(voice: Voice, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hcp.ui.voice"), \
            mock.patch("pygame.mixer.init", side_effect=pygame.error("ALSA: no such device")):
        assert not voice.open()
        assert not voice.open()
        for sound in Sound:
            voice.play(sound)
    assert len(caplog.records) == 1
    assert "no audio device" in caplog.records[0].getMessage()


def test_disabled_voice_stays_silent() -> None:
    player = Voice(VoiceSection(enabled=False))
    assert not player.open()
    player.play(Sound.THANKS)
    player.close()
    player.close()


def test_missing_recordings_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    player = Voice(VoiceSection(sounds_dir=tmp_path))
    with caplog.at_level(logging.WARNING, logger="hcp.ui.voice"):
        assert player.open()
    player.play(Sound.THANKS)
    player.close()
    assert "make_voice.py" in caplog.text


def test_tone_generator_writes_a_wav(tmp_path: Path) -> None:
    path = tmp_path / "beep.wav"
    load_script().tone(path, [(1000, 0.1)])
    with wave.open(str(path)) as out:
        assert out.getnframes() == 2205 and out.getsampwidth() == 2


def test_make_voice_records_mandarin(tmp_path: Path) -> None:
    # `make test` installs espeak-ng (scripts/install-deps.sh); without it this must fail, not skip.
    assert shutil.which("espeak-ng"), "espeak-ng not installed: run 'make deps' or apt-get install espeak-ng"
    paths = load_script().make_all(tmp_path)
    assert sorted(p.stem for p in paths) == sorted(s.value for s in Sound)
