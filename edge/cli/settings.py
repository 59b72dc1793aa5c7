"""`kiosk config check|show`: validate a config file, print the effective configuration."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from edge import config as cfg
from edge.cli.context import Context
from edge.errors import EXIT_OK


def add_parsers(sub: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    config = sub.add_parser("config", parents=[common], help="check or show the configuration")
    config.set_defaults(handler=run)
    config_sub = config.add_subparsers(
        dest="config_command", required=True, parser_class=parser_class
    )
    check = config_sub.add_parser("check", parents=[common], help="validate a config file")
    check.add_argument("path", nargs="?", type=Path, help="file to check (default: --config)")
    config_sub.add_parser("show", parents=[common], help="print the effective configuration")


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.config_command == "check":
        path = args.path or args.config or Path(os.environ.get("KIOSK_CONFIG", cfg.DEFAULT_PATH))
        config = cfg.load(path)
        ctx.emit(
            {"ok": True, "path": str(path), "kiosk_id": config.kiosk.id, "digest": config.digest()},
            f"{path}: ok (kiosk {config.kiosk.id}, digest {config.digest()})",
        )
        return EXIT_OK
    data = ctx.config.model_dump(mode="json")
    ctx.emit(data, json.dumps(data, ensure_ascii=False, indent=2))
    return EXIT_OK
