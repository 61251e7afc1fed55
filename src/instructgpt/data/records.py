"""Record readers: JSONL with file:line errors, and plain-text documents for pretraining."""
from __future__ import annotations

import contextlib
import gzip
import json
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from instructgpt.config.errors import UserError


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-blank line (`.gz` read as gzip, a UTF-8 BOM allowed); a bad
    line, bytes that are not UTF-8 or a broken gzip stream name the file (and the line)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    lineno = 0
    with read_errors(path, lambda: lineno + 1), opener(path, "rt", encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
            except RecursionError:
                raise UserError(f"{path}:{lineno}: JSON nested too deeply") from None
            if not isinstance(record, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


@contextlib.contextmanager
def read_errors(path: Path, line: Callable[[], int] | None = None) -> Iterator[None]:
    """Turn the errors of reading a text file (not UTF-8, a broken gzip stream) into one-line UserErrors
    naming the file and, when `line()` tells it, the line being read."""
    where = lambda: f"{path}:{line()}" if line else str(path)  # noqa: E731
    try:
        yield
    except UnicodeDecodeError as e:
        raise UserError(f"{where()}: not UTF-8 text ({e.reason} at byte {e.start} of the line); save the file "
                        f"as UTF-8") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise UserError(f"{path}: not a readable gzip file ({e or type(e).__name__})") from None


def require_fields(record: dict[str, Any], fields: Iterable[str], where: str) -> None:
    for name in fields:
        if not isinstance(record.get(name), str):
            state = "is missing" if name not in record else "must be a string"
            raise UserError(f'{where}: field "{name}" {state} (found: {", ".join(record) or "nothing"})')


def iter_documents(paths: Iterable[str | Path], field: str = "text") -> Iterator[str]:
    """Documents for pretraining: blank-line separated paragraphs of `.txt`, or `field` of `.jsonl`."""
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: corpus file not found (check the 'corpus' / 'files' key)")
        if path.suffix == ".jsonl":
            for lineno, record in iter_jsonl(path):
                yield record_text(record, field, f"{path}:{lineno}")
            continue
        lineno = 0
        with read_errors(path, lambda: lineno + 1), open(path, encoding="utf-8-sig") as f:
            paragraph: list[str] = []
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    paragraph.append(line.rstrip("\n"))
                elif paragraph:
                    yield "\n".join(paragraph)
                    paragraph = []
            if paragraph:
                yield "\n".join(paragraph)


def record_text(record: dict[str, Any], field: str, where: str) -> str:
    """The text a record contributes to pretraining / tokenizer training."""
    if field in record:
        require_fields(record, [field], where)
        return record[field]
    if "prompt" in record and "completion" in record:
        require_fields(record, ["prompt", "completion"], where)
        return f"{record['prompt']}\n{record['completion']}"
    if isinstance(record.get("messages"), list):
        return "\n".join(str(m.get("content", "")) for m in record["messages"] if isinstance(m, dict))
    raise UserError(f'{where}: field "{field}" is missing (found: {", ".join(record) or "nothing"}); '
                    f'expected {{"{field}"}}, {{"prompt","completion"}} or {{"messages"}}')
