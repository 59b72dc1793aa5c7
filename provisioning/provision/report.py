"""For the self-test and report steps: is the daemon running, the local store and printer, and
the printed summary."""

from __future__ import annotations

from typing import Any

from edge import config as cfg


def _daemon_answers(config: cfg.Config) -> bool:
    import urllib.error
    import urllib.request

    url = f"http://{config.web.host}:{config.web.port}/api/health"
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # something answers HTTP there: a daemon still starting
    except (urllib.error.URLError, OSError):
        return False


class _LocalParts:
    """Store, data key and print queue opened by provisioning (the daemon may be stopped)."""

    def __init__(self, config: cfg.Config) -> None:
        from edge.adapters import build_printer
        from edge.events import EventBus
        from edge.printing import PrintQueue
        from edge.store import DataKey, Store

        config.storage.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = DataKey.load_or_create(config.storage.data_key_path)
        self.store = Store(config.storage.db_path)
        self.store.open()
        self.printer = PrintQueue(
            build_printer(config), store=self.store, key=self.key, bus=EventBus()
        )

    def close(self) -> None:
        self.store.close()


def _print_summary(printer: Any, config: cfg.Config, summary: dict[str, Any]) -> bool:
    from edge.receipts import Receipt

    receipt = Receipt(paper_width_mm=config.printer.paper_width_mm, profile=config.printer.profile)
    receipt.text("LẮP ĐẶT KI-ỐT", size=32, bold=True, center=True)
    receipt.text("Provisioning summary", size=20, center=True)
    receipt.rule()
    receipt.text(
        f"Ki-ốt: {summary['kiosk_id']}\n"
        f"Địa điểm: {summary['site'] or '-'}\n"
        f"Vị trí: {summary['location'] or '-'}\n"
        f"Đăng ký: {summary['enrolment']}\n"
        f"Chứng thư: {summary['certificate_serial']}\n"
        f"Hết hạn: {(summary['certificate_not_after'] or '-')[:10]}\n"
        f"Máy chủ: {summary['broker'] or '-'}"
    )
    receipt.rule()
    marks = {"ok": "ĐẠT", "warn": "CHÚ Ý", "fail": "LỖI"}
    receipt.text(
        "\n".join(
            f"{c['part']}: {marks.get(c['verdict'], c['verdict'])}" for c in summary["checks"]
        )
        or "Kiểm tra phần cứng: bỏ qua"
    )
    receipt.feed(2)
    outcome = printer.submit("provisioning", "Tóm tắt lắp đặt", receipt.build())
    return bool(outcome.printed)
