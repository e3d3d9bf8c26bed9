"""Write the hand-made seed inputs into fuzz/corpus/ (good frames and messages, and their near misses).

    .venv/bin/python fuzz/seed_corpus.py
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from hcp.device.frames import STX, encode_frame  # noqa: E402


def frame_seeds() -> list[bytes]:
    key = encode_frame(0x10, {"key": 5})
    prompt = encode_frame(0x30, {"prompt_id": "P1", "case_ids": ["C1"], "item_code": "I1", "item_name": "营业执照",
                                 "clerk_id": "K7"})
    return [key, prompt, encode_frame(0x01), b"\x00garbage" + key, key[:-1] + b"\x00", key[:4],
            bytes([STX, 2, 0x10, 0, 0]), bytes([STX, 1, 0x10, 0xFF, 0xFF]), bytes([STX]) * 8 + key,
            encode_frame(0x30, b"\xff\xfe not json"), encode_frame(0x30, b"[1,2]"), encode_frame(0x30, b"[" * 500),
            key + key[:3] + prompt]


def payload_seeds() -> list[bytes]:
    rating = (b'{"v":1,"device_id":"t1","ratings":[{"rating_id":"0190f0a4-1111-7000-8000-000000000001","seq":1,'
              b'"kind":"service","case_ids":["C1"],"score":5,"rated_at":"2024-05-01T10:00:00+08:00",'
              b'"clock_synced":true}]}')
    return [rating, rating.replace(b'"score":5', b'"score":"5"'), rating.replace(b"+08:00", b""),
            rating.replace(b'"v":1', b'"v":2'), rating[:-3],
            b'{"v":1,"results":[{"rating_id":"x","outcome":"accepted"}]}',
            b'{"v":1,"prompt_id":"P1","case_ids":["C1"],"item_code":"I1","item_name":"x","clerk_id":"K"}',
            b'{"v":1,"device_id":"t1","state":"online"}', b"[" * 3000, b'{"v":1e999}', b"\xff", b"", b"null",
            b'{"v":1,"cases":[{"case_id":"C1","hall_id":"h","window_id":"w","item_code":"I","item_name":"n",'
            b'"clerk_id":"E","intake":"ok","completed_at":"2024-05-01T10:00:00+08:00"}]}']


def write(folder: Path, seeds: list[bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (folder / f"seed-{hashlib.sha1(seed).hexdigest()[:16]}").write_bytes(seed)


if __name__ == "__main__":
    write(HERE / "corpus" / "frames", frame_seeds())
    write(HERE / "corpus" / "payloads", payload_seeds())
