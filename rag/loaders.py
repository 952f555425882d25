"""Load documents from disk: Markdown with YAML front matter, plain text, HTML, PDF and DOCX.

Turns files into `Document`s with a clean body text; it does not chunk or embed.
Unknown or unreadable files are skipped with a warning that names the file and the reason.
`load_untrusted` reads a file someone uploaded: it checks that the content matches the
extension, then parses PDF, DOCX and HTML in a child process that is killed past a time limit.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import yaml

from rag.errors import DocumentError
from rag.types import Document

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx"}
# Far beyond any policy paper: past these, a file is refused before it is parsed.
MAX_DOCX_UNPACKED_BYTES = 200 * 1024 * 1024  # a small DOCX that unpacks to more is a zip bomb
MAX_PDF_PAGES = 2000
MAX_PARSE_SECONDS = 60.0  # a 10 MB policy PDF parses in a few seconds; a hostile one can take hours
READER_START_SECONDS = 120.0  # starting the child reader (imports only), not counted in the parse time
# The child reader's address space; it imports its parsers in about 1/10 of this, and a policy
# document parses in a fraction of the rest. Past it, the parse fails with MemoryError.
READER_MAX_BYTES = 2 * 1024**3
# Formats whose parsers have slow paths on crafted input; they are parsed in a child process.
PARSED_APART = {".pdf", ".docx", ".html", ".htm"}
TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm"}
# Files in a corpus folder that describe the corpus rather than belong to it.
NOT_DOCUMENTS = {"README.md", "MANIFEST.tsv", "LICENSE", ".gitkeep"}

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*\r?\n", re.DOTALL)


class _FrontMatterLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` without anchors and aliases: a few hundred bytes of nested aliases
    expand to gigabytes (the "billion laughs"), and front matter has no use for them."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise DocumentError(
                "its front matter uses YAML aliases (&/*), which are not accepted; write each value out in full"
            )
        return super().compose_node(parent, index)


def split_front_matter(text: str) -> tuple[dict, str]:
    """Split YAML front matter from a Markdown text.

    `split_front_matter("---\\ntitle: A\\n---\\nBody")` -> `({"title": "A"}, "Body")`.

    Raises:
        DocumentError: the front matter is not a mapping, or uses YAML anchors or aliases.
    """
    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    meta = yaml.load(m.group(1), Loader=_FrontMatterLoader) or {}  # a SafeLoader, without aliases
    if not isinstance(meta, dict):
        raise DocumentError("its front matter is not a YAML mapping")
    return meta, text[m.end() :]


def _first_heading(body: str) -> str:
    m = re.search(r"^#{1,6}\s+(.+?)\s*$", body, re.MULTILINE)
    return m.group(1) if m else ""


def _html_to_text(html: str) -> tuple[str, str]:
    """Return (title, body) from HTML, keeping headings as Markdown so chunking sees structure."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "nav", "footer", "header", "noscript"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    blocks: list[str] = []
    for el in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td"]):
        text = " ".join(el.get_text(" ", strip=True).split())
        if not text:
            continue
        if el.name.startswith("h"):
            blocks.append("#" * int(el.name[1]) + " " + text)
        elif el.name == "li":
            blocks.append("- " + text)
        else:
            blocks.append(text)
    return title, "\n\n".join(blocks)


def _pdf_to_text(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    if len(reader.pages) > MAX_PDF_PAGES:
        raise DocumentError(f"has {len(reader.pages)} pages; the limit is {MAX_PDF_PAGES}")
    pages = [(page.extract_text() or "").strip() for page in reader.pages]
    return "\n\n".join(p for p in pages if p)


def _docx_to_text(path: Path) -> tuple[str, str]:
    import zipfile

    import docx

    # The declared sizes bound what reading the parts can unpack (zipfile stops at them).
    with zipfile.ZipFile(path) as z:
        unpacked = sum(i.file_size for i in z.infolist())
    if unpacked > MAX_DOCX_UNPACKED_BYTES:
        raise DocumentError(
            f"unpacks to {unpacked / 1e6:.0f} MB, over the limit of {MAX_DOCX_UNPACKED_BYTES / 1e6:.0f} MB"
        )
    d = docx.Document(str(path))
    blocks: list[str] = []
    for para in d.paragraphs:
        text = para.text.strip()
        if not text:
            continue
        style = (para.style.name or "").lower() if para.style is not None else ""
        if style.startswith("heading"):
            level = re.findall(r"\d+", style)
            blocks.append("#" * (int(level[0]) if level else 1) + " " + text)
        elif "list" in style:
            blocks.append("- " + text)
        else:
            blocks.append(text)
    title = d.core_properties.title or ""
    return title, "\n\n".join(blocks)


def load_document(path: Path, doc_id: str | None = None) -> Document:
    """Read one file into a `Document`.

    Args:
        path: the file; its suffix picks the parser.
        doc_id: the id to give it; defaults to the file name without its suffix.

    Returns:
        The document, with metadata from front matter where there is any.

    Raises:
        DocumentError: the format is not supported, the file cannot be parsed, or it holds no text.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(
            f"{path.name}: unsupported file type {suffix or '(none)'}; "
            f"use one of {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    doc_id = doc_id or path.stem
    meta: dict = {}
    title = ""
    try:
        if suffix in {".md", ".markdown"}:
            meta, body = split_front_matter(path.read_text(encoding="utf-8"))
            title = str(meta.get("title") or _first_heading(body))
        elif suffix == ".txt":
            body = path.read_text(encoding="utf-8")
        elif suffix in {".html", ".htm"}:
            title, body = _html_to_text(path.read_text(encoding="utf-8", errors="replace"))
        elif suffix == ".pdf":
            body = _pdf_to_text(path)
        else:
            title, body = _docx_to_text(path)
    except DocumentError as e:
        raise DocumentError(f"{path.name}: {e}") from e
    except UnicodeDecodeError:
        raise DocumentError(f"{path.name}: not valid UTF-8 text") from None
    except Exception as e:  # parsers raise many types; the user needs the file and reason
        raise DocumentError(f"{path.name}: could not be read ({type(e).__name__}: {e})") from e
    if not body.strip():
        raise DocumentError(f"{path.name}: holds no text (a scanned PDF needs OCR first)")
    return Document(
        doc_id=doc_id,
        title=title or doc_id.replace("-", " ").replace("_", " "),
        body=body,
        publisher=str(meta.get("publisher") or ""),
        date=str(meta.get("date") or ""),
        source_url=str(meta.get("source_url") or ""),
        licence=str(meta.get("licence") or ""),
        path=str(path),
    )


def check_content(name: str, data: bytes) -> None:
    """Refuse a file whose bytes are not what its extension says.

    `check_content("a.pdf", b"PK\\x03\\x04...")` raises `DocumentError`; `check_content("a.md", b"# Hi")` passes.

    Raises:
        DocumentError: empty, a PDF without the PDF header, a DOCX that is not a zip file, or a
            text format (Markdown, text, HTML) holding binary data.
    """
    suffix = Path(name).suffix.lower()
    if not data.strip():
        raise DocumentError(f"“{name}” is empty.")
    if suffix == ".pdf" and b"%PDF-" not in data[:1024]:
        raise DocumentError(f"“{name}” is not a PDF (it has no PDF header); check that the file is what its name says.")
    if suffix == ".docx" and not data.startswith(b"PK\x03\x04"):
        raise DocumentError(
            f"“{name}” is not a Word .docx file (it is not a zip package); an old .doc must be saved as .docx first."
        )
    if suffix in TEXT_SUFFIXES and (b"\x00" in data[:65536] or data.startswith((b"%PDF-", b"PK\x03\x04"))):
        raise DocumentError(
            f"“{name}” holds binary data, not text; check that the file is what its name says "
            "(a PDF or Word file needs its own extension)."
        )


def _reader_main() -> None:  # the child process: `python -c "from rag.loaders import _reader_main; ..."`
    """Read the file named by `sys.argv[1]` (id `sys.argv[2]`); write b"R" once the parsers are
    imported, then a pickled `("ok", Document)` or `("error", message)` on stdout. Its CPU time is
    capped at `sys.argv[3]` seconds, so it ends even if the parent dies before it can kill it, and
    its address space at `sys.argv[4]` bytes, so a file that unpacks to gigabytes fails alone."""
    import math
    import pickle
    import resource
    import sys

    cpu_s = math.ceil(float(sys.argv[3]))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))  # SIGXCPU, then SIGKILL
    max_bytes = int(sys.argv[4])
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))  # past it, allocations raise MemoryError

    import bs4  # noqa: F401 - imported before the clock starts
    import docx  # noqa: F401
    import pypdf  # noqa: F401

    sys.stdout.buffer.write(b"R")
    sys.stdout.buffer.flush()
    path = Path(sys.argv[1])
    try:
        result = ("ok", load_document(path, sys.argv[2] or None))
    except DocumentError as e:  # load_document names a MemoryError "could not be read": say what it was
        result = ("error", _too_big(path.name, max_bytes) if isinstance(e.__cause__, MemoryError) else str(e))
    except MemoryError:
        result = ("error", _too_big(path.name, max_bytes))
    except BaseException as e:  # noqa: BLE001 - the parent needs a reason, whatever happened
        result = ("error", f"{path.name}: could not be read ({type(e).__name__})")
    sys.stdout.buffer.write(pickle.dumps(result))
    sys.stdout.buffer.flush()


def _too_big(name: str, max_bytes: int) -> str:
    return (
        f"{name}: needs more than {max_bytes / 1024**3:g} GB of memory to read, so it was stopped; "
        "a normal document needs far less (try saving it again, or as text)"
    )


def load_untrusted(path: Path, doc_id: str | None = None, timeout_s: float = MAX_PARSE_SECONDS) -> Document:
    """Read a file from an untrusted source: check its content, then parse it with a time limit.

    PDF, DOCX and HTML are parsed in a fresh Python process that is killed if parsing takes longer
    than `timeout_s` (a thread could not be stopped) and may use at most `READER_MAX_BYTES` of memory.
    It is started with `subprocess`, not `multiprocessing`, so it neither inherits the server's
    threads nor re-runs the caller's script.
    The time counts from when the child has imported its parsers, not from its start-up.

    Args:
        path: the file; its suffix picks the parser.
        doc_id: the id to give it; defaults to the file name without its suffix.
        timeout_s: the parse time limit in seconds.

    Returns:
        The document, as `load_document` reads it.

    Raises:
        DocumentError: the file is refused (see `check_content` and `load_document`), took too long
            or needed too much memory.
    """
    import os
    import pickle
    import select
    import subprocess
    import sys

    with open(path, "rb") as f:
        check_content(path.name, f.read())
    if path.suffix.lower() not in PARSED_APART:
        return load_document(path, doc_id)
    cpu = str(timeout_s + READER_START_SECONDS)  # start-up included: a cap for an orphaned reader only
    package_root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    # numpy comes in with `rag`; one BLAS thread keeps its address space small under READER_MAX_BYTES.
    env |= {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    args = [str(path), doc_id or "", cpu, str(READER_MAX_BYTES)]
    child = subprocess.Popen(
        [sys.executable, "-c", "from rag.loaders import _reader_main; _reader_main()", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], READER_START_SECONDS)
        if not ready or os.read(child.stdout.fileno(), 1) != b"R":
            raise DocumentError(f"{path.name}: the file reader did not start; try again")
        try:
            out, _ = child.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DocumentError(
                f"{path.name}: took longer than {timeout_s:g} s to read, so it was stopped; "
                "a normal document reads in seconds (try saving it again, or as text)"
            ) from None
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    try:
        kind, value = pickle.loads(out)
    except Exception:  # the child died without a word (out of memory inside a parser's C code, say)
        raise DocumentError(
            f"{path.name}: the file reader stopped while reading it (exit status {child.returncode}); "
            f"it may need more than {READER_MAX_BYTES / 1024**3:g} GB of memory (try saving it again, or as text)"
        ) from None
    if kind == "error":
        raise DocumentError(value)
    return value


def corpus_files(corpus_dir: Path) -> list[Path]:
    """Every candidate file under `corpus_dir`, sorted, without the corpus's own README/manifest."""
    return sorted(
        p for p in corpus_dir.rglob("*") if p.is_file() and p.name not in NOT_DOCUMENTS and not p.name.startswith(".")
    )


def load_corpus(corpus_dir: Path) -> list[Document]:
    """Load every readable document under `corpus_dir`, warning about (and skipping) the rest.

    Raises:
        DocumentError: the folder does not exist or holds no readable document.
    """
    if not corpus_dir.is_dir():
        raise DocumentError(f"corpus folder {corpus_dir} does not exist")
    docs: list[Document] = []
    seen: set[str] = set()
    for path in corpus_files(corpus_dir):
        try:
            doc = load_document(path)
        except DocumentError as e:
            log.warning("skipping %s", e)
            continue
        if doc.doc_id in seen:
            log.warning("skipping %s: another file already has the id %r", path, doc.doc_id)
            continue
        seen.add(doc.doc_id)
        docs.append(doc)
    if not docs:
        raise DocumentError(f"no readable documents in {corpus_dir}")
    return docs
