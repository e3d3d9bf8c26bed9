"""Write docs/configuration.md from the config schema (hcp.config.doc)."""

from pathlib import Path

from hcp.config.doc import render

if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
    target.write_text(render(), "utf-8")
    print(f"wrote {target}")
