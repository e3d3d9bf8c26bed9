"""Spoken prompts and tones through pygame.mixer, from the recordings under ``ui/sounds``.

The recordings are made at build time by ``scripts/make_voice.py`` (espeak-ng's
Mandarin voice), so the terminal needs no speech engine. A terminal without an
audio device keeps working silently after one log line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hcp.agent.events import Sound
from hcp.ui.settings import VoiceSection

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).resolve().parent / "sounds"

#: What each spoken prompt says; make_voice.py records these texts.
SPOKEN: dict[Sound, str] = {
    Sound.PLEASE_RATE: "请您对本次服务进行评价",
    Sound.THANKS: "感谢您的评价",
    Sound.ASK_REASON: "请选择您不满意的原因",
    Sound.HALL_QUESTION: "请您对大厅整体服务进行评价",
}
#: Spoken prompts interrupt each other on one channel; tones play on another so a beep never cuts speech.
_SPEECH, _TONE = 0, 1


class Voice:
    """Plays :class:`Sound` values; call from one thread (the UI thread)."""

    def __init__(self, settings: VoiceSection | None = None) -> None:
        self.settings = settings or VoiceSection()
        self.folder = self.settings.sounds_dir or SHIPPED
        self._mixer: Any = None
        self._sounds: dict[Sound, Any] = {}
        self._failed = False

    @property
    def is_available(self) -> bool:
        """True once the mixer is open."""
        return self._mixer is not None

    def open(self) -> bool:
        """Open the audio device and load the recordings; False (logged once) when there is no audio."""
        if self._mixer is not None or self._failed or not self.settings.enabled:
            return self._mixer is not None
        import pygame

        try:
            pygame.mixer.pre_init(22050, -16, 1, 512)  # espeak-ng's own format: no resampling, low latency
            pygame.mixer.init()
            pygame.mixer.set_num_channels(2)
        except pygame.error as err:
            self._failed = True
            log.warning("no audio device (%s): voice prompts and beeps are off", err)
            return False
        self._mixer = pygame.mixer
        self._load()
        return True

    def _load(self) -> None:
        import pygame

        missing = []
        for sound in Sound:
            path = self.folder / f"{sound.value}.wav"
            try:
                self._sounds[sound] = pygame.mixer.Sound(str(path))
                self._sounds[sound].set_volume(self.settings.volume)
            except (pygame.error, FileNotFoundError):
                missing.append(path.name)
        if missing:
            log.warning("sounds missing in %s: %s (run scripts/make_voice.py)", self.folder, ", ".join(missing))

    def play(self, sound: Sound) -> None:
        """Start playing ``sound`` and return at once; a no-op without audio."""
        if self._mixer is None or sound not in self._sounds:
            return
        tone = sound in (Sound.BEEP, Sound.ERROR)
        if tone and not self.settings.beep:
            return
        self._mixer.Channel(_TONE if tone else _SPEECH).play(self._sounds[sound])

    def set_volume(self, volume: float) -> None:
        """Change the playback volume (0 to 1) from now on, e.g. after a remote settings push."""
        self.settings = self.settings.model_copy(update={"volume": max(0.0, min(1.0, volume))})
        for sound in self._sounds.values():
            sound.set_volume(self.settings.volume)

    def close(self) -> None:
        """Release the audio device; safe to call twice."""
        mixer, self._mixer = self._mixer, None
        self._sounds = {}
        if mixer is not None:
            mixer.quit()
