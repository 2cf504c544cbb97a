"""Rendering results for people: terminal tables (and, later, Markdown and plots)."""

from __future__ import annotations

import io


def render_table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    """A boxed terminal table; numbers (right-aligned) are kept as the caller formatted them."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    buffer = io.StringIO()
    Console(file=buffer, width=120, color_system=None).print(table)
    return buffer.getvalue().rstrip()


def render_markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
