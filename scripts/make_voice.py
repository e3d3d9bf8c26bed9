"""Record the spoken prompts with espeak-ng's Mandarin voice and generate the tones, into ui/sounds/*.wav.

Run at build time (espeak-ng is a build dependency, not a runtime one):
``apt-get install espeak-ng && python scripts/make_voice.py``.
"""

from __future__ import annotations

import argparse
import math
import shutil
import struct
import subprocess
import sys
import wave
from pathlib import Path

from hcp.agent.events import Sound
from hcp.ui.voice import SHIPPED, SPOKEN

RATE = 22050


def speak(text: str, path: Path, speed: int) -> None:
    """Record ``text`` with espeak-ng's Mandarin voice (cmn) into ``path``."""
    subprocess.run(["espeak-ng", "-v", "cmn", "-s", str(speed), "-w", str(path), text], check=True, timeout=60)


def tone(path: Path, notes: list[tuple[float, float]], volume: float = 0.5) -> None:
    """Write a 16-bit mono WAV of sine ``notes`` (frequency Hz, seconds), each faded in and out to avoid clicks."""
    samples = []
    for freq, seconds in notes:
        count = int(RATE * seconds)
        fade = int(RATE * 0.008)
        for i in range(count):
            envelope = min(1.0, i / fade, (count - i) / fade)
            samples.append(int(32767 * volume * envelope * math.sin(2 * math.pi * freq * i / RATE)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))


def make_all(folder: Path, speed: int = 140) -> list[Path]:
    """Write every sound into ``folder``; return the paths."""
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng not found: apt-get install espeak-ng")
    folder.mkdir(parents=True, exist_ok=True)
    for sound, text in SPOKEN.items():
        speak(text, folder / f"{sound.value}.wav", speed)
    tone(folder / f"{Sound.BEEP.value}.wav", [(1320, 0.08)])
    tone(folder / f"{Sound.ERROR.value}.wav", [(440, 0.15), (0, 0.05), (330, 0.25)])
    return sorted(folder.glob("*.wav"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SHIPPED, help="folder for the WAV files (default: ui/sounds)")
    parser.add_argument("--speed", type=int, default=140, help="words per minute for espeak-ng (default 140)")
    args = parser.parse_args()
    for path in make_all(args.out, args.speed):
        print(path, path.stat().st_size)


if __name__ == "__main__":
    main()
