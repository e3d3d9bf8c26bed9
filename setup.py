"""Packaging for hcp: the top-level folders are the subpackages of ``hcp``."""

from setuptools import setup

SUBPACKAGES = ["agent", "collector", "config", "device", "sim", "sync", "ui"]

setup(
    name="hcp",
    version="0.1.0",
    description="Evaluator terminals, sync and collector for the 好差评 rating scheme",
    python_requires=">=3.11",
    packages=["hcp", "hcp.cli", "hcp.collector.store", "hcp.collector.console"]
    + [f"hcp.{name}" for name in SUBPACKAGES],
    package_dir={"hcp": "hcp", **{f"hcp.{name}": name for name in SUBPACKAGES}},
    package_data={"hcp.config": ["*.toml", "profiles/*.toml", "calendar/*.toml", "mosquitto/*",
                                 "upstream/*.toml"],
                  "hcp.ui": ["sounds/*.wav"],
                  "hcp.collector.console": ["templates/*.html", "templates/*/*.html", "static/*.js", "static/*.css",
                                            "static/*.json", "static/*/*",
                                            "static/node_modules/chart.js/dist/chart.umd.min.js"]},
    install_requires=[
        "paho-mqtt>=2.1,<3",
        "gpiozero>=2.0",
        "pygame>=2.5",
        "qrcode>=7.4",
        "pyserial>=3.5",
        "sqlite-utils>=3.36",
        "pydantic>=2.6,<3",
        "msgspec>=0.18",
        "uuid6>=2024.1",
        "cryptography>=47",
        "matplotlib>=3.8",
        "starlette>=0.40",
        "uvicorn>=0.31",
        "limits>=3.13",
        "gmssl>=3.2",
        "tabulate>=0.9",
        "wcwidth>=0.2.13",
        "tenacity>=8.2",
        "tomli-w>=1.0",
        # The console: server-rendered pages, its accounts' password hashes, the statistics' XLSX export.
        "jinja2>=3.1",
        "argon2-cffi>=23.1",
        "openpyxl>=3.1",
        # The collector on PostgreSQL (imported only for a postgresql:// database). The binary wheel bundles
        # libpq where PyPI has one (x86_64, aarch64); elsewhere (a 32-bit Raspberry Pi OS terminal, which never
        # opens PostgreSQL) psycopg uses the system's libpq5.
        "psycopg>=3.1",
        "psycopg-binary>=3.1; platform_machine == 'x86_64' or platform_machine == 'aarch64'",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100", "ruff>=0.5", "zxing-cpp>=2.2",
                 "playwright>=1.45"],
    },
    entry_points={"console_scripts": ["hcp = hcp.cli:main"]},
)
