"""Typesetting of reports/final.pdf: reportlab's platypus lays out text, tables and the table of contents;
matplotlib figures enter as vector drawings (SVG with real text, converted by svglib), so tick labels stay
text a reader can search and copy.

One font everywhere: DejaVu Sans, the TrueType font matplotlib ships and draws its figures with, embedded
(subset) from matplotlib's own data folder, so the report does not depend on the fonts of the machine and the
figures' text is set with the metrics it was measured with. ``invariant=1`` fixes reportlab's dates and
document id: the same story gives the same PDF bytes.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from pathlib import Path
from xml.sax.saxutils import escape

import matplotlib as mpl
import pandas as pd
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Frame,
    KeepInFrame,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Preformatted,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.tableofcontents import TableOfContents

from ..forked import ForkPool
from . import formatting as F

PAGE_W, PAGE_H = A4
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 48.0, 46.0, 50.0
FRAME_W = PAGE_W - 2 * MARGIN_X
FRAME_H = PAGE_H - MARGIN_TOP - MARGIN_BOTTOM
# Frame padding is reportlab's default (6 pt each side): what a flowable may really use
TEXT_W = FRAME_W - 12
TEXT_H = FRAME_H - 12
FIG_WIDTH_IN = TEXT_W / 72  # figures are drawn at their printed size: 8 pt in matplotlib is 8 pt on paper

FONT, BOLD, ITALIC, BOLD_ITALIC, MONO = ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique",
                                         "DejaVuSans-BoldOblique", "DejaVuSansMono")
TABLE_FONT_SIZES = (7.5, 7.0, 6.5, 6.0)
CELL_PAD = 3.0
GREY = colors.HexColor("#555555")
RULE = colors.HexColor("#333333")
ZEBRA = colors.HexColor("#f3f3f3")
WARN_BG, WARN_FG = colors.HexColor("#fff1f0"), colors.HexColor("#a8071a")

_fonts_ready = False


def register_fonts() -> None:
    """DejaVu Sans for reportlab (text, tables) and for svglib (the figures' SVG text), from matplotlib's files."""
    global _fonts_ready
    if _fonts_ready:
        return
    from svglib.fonts import register_font

    ttf = Path(mpl.get_data_path()) / "fonts" / "ttf"
    files = {FONT: "DejaVuSans.ttf", BOLD: "DejaVuSans-Bold.ttf", ITALIC: "DejaVuSans-Oblique.ttf",
             BOLD_ITALIC: "DejaVuSans-BoldOblique.ttf", MONO: "DejaVuSansMono.ttf"}
    # the figures' SVG names the family "DejaVu Sans" with font-weight 700 for bold and font-style italic/oblique
    for weights, styles, name in ((("normal", "400"), ("normal",), FONT), (("bold", "600", "700", "800", "900"),
                                  ("normal",), BOLD), (("normal", "400"), ("italic", "oblique"), ITALIC),
                                  (("bold", "600", "700", "800", "900"), ("italic", "oblique"), BOLD_ITALIC)):
        for weight in weights:
            for style in styles:
                register_font("DejaVu Sans", str(ttf / files[name]), weight=weight, style=style, rlgFontName=name)
    register_font("DejaVu Sans Mono", str(ttf / files[MONO]), rlgFontName=MONO)
    # last: registering a TrueType font resets its bold/italic mapping, which the family below sets
    for name, file in files.items():
        pdfmetrics.registerFont(TTFont(name, str(ttf / file)))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=ITALIC, boldItalic=BOLD_ITALIC)
    _fonts_ready = True


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12.2, spaceAfter=5, bulletFontName=FONT)
    return {
        "body": base,
        "title": ParagraphStyle("title", parent=base, fontName=BOLD, fontSize=17, leading=21, spaceAfter=4),
        "subtitle": ParagraphStyle("subtitle", parent=base, textColor=GREY, fontSize=9.5, spaceAfter=10),
        # a heading stays on the page of what follows it
        "h1": ParagraphStyle("h1", parent=base, fontName=BOLD, fontSize=13.5, leading=17, spaceBefore=4,
                             spaceAfter=7, keepWithNext=1),
        "h2": ParagraphStyle("h2", parent=base, fontName=BOLD, fontSize=10.5, leading=13.5, spaceBefore=8,
                             spaceAfter=4, keepWithNext=1),
        "bullet": ParagraphStyle("bullet", parent=base, leftIndent=11, bulletIndent=2, spaceAfter=3),
        "bullet2": ParagraphStyle("bullet2", parent=base, leftIndent=22, bulletIndent=13, spaceAfter=2),
        "small": ParagraphStyle("small", parent=base, fontSize=7.6, leading=9.8, textColor=GREY, spaceAfter=3),
        "caption": ParagraphStyle("caption", parent=base, fontSize=8, leading=10.4, spaceBefore=2, spaceAfter=9),
        "warning": ParagraphStyle("warning", parent=base, fontSize=8.6, leading=11.4, textColor=WARN_FG,
                                  backColor=WARN_BG, borderColor=WARN_FG, borderWidth=0.7, borderPadding=5,
                                  spaceBefore=4, spaceAfter=10),
        "mono": ParagraphStyle("mono", parent=base, fontName=MONO, fontSize=6.8, leading=8.4, spaceAfter=5),
        "toc1": ParagraphStyle("toc1", parent=base, fontName=BOLD, fontSize=9, leading=12, leftIndent=0,
                               firstLineIndent=0, spaceAfter=0),
        "toc2": ParagraphStyle("toc2", parent=base, fontSize=8.5, leading=11, leftIndent=14, firstLineIndent=0,
                               spaceAfter=0),
        "cell": ParagraphStyle("cell", parent=base, fontSize=7.5, leading=9, spaceAfter=0),
    }


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "x"


def figure_svg(fig) -> bytes:
    """The figure as SVG with its text as text (fixed ids and no date: the same figure gives the same bytes)."""
    buf = io.BytesIO()
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": "embedrobust"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def svg_drawing(svg: bytes, max_w: float = TEXT_W, max_h: float = TEXT_H * 0.9):
    """svglib drawing of ``svg``, scaled down (never up) to fit ``max_w`` x ``max_h`` points."""
    from svglib.svglib import svg2rlg

    register_fonts()
    # svglib reads fill-opacity and stroke-opacity but not an element's overall opacity (matplotlib writes that
    # for a patch with alpha): spell it out as both
    svg = re.sub(rb"(?<![-\w])opacity:\s*([0-9.eE+-]+)", rb"fill-opacity: \1; stroke-opacity: \1", svg)
    d = svg2rlg(io.BytesIO(svg))
    s = min(1.0, max_w / d.width, max_h / d.height)
    if s < 1.0:
        d.width, d.height = d.width * s, d.height * s
        d.scale(s, s)
    d.hAlign = "CENTER"
    return d


def _converted(fig, max_h: float) -> tuple[bytes, object]:
    """A figure's SVG and its drawing (one piece of :class:`ForkPool` work)."""
    svg = figure_svg(fig)
    return svg, svg_drawing(svg, TEXT_W, max_h)


class _Heading(Paragraph):
    """A heading that marks its page for the contents, the PDF outline and in-document links."""

    def __init__(self, text: str, style, level: int, key: str, toc: bool):
        super().__init__(escape(text), style)
        self.toc = (level, text, key) if toc else None


class _Template(BaseDocTemplate):
    def __init__(self, filename, footer: str, **kw):
        super().__init__(filename, pagesize=A4, leftMargin=MARGIN_X, rightMargin=MARGIN_X, topMargin=MARGIN_TOP,
                         bottomMargin=MARGIN_BOTTOM, invariant=1, **kw)
        self._footer_text = footer
        frame = Frame(MARGIN_X, MARGIN_BOTTOM, FRAME_W, FRAME_H, id="body")
        self.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=self._footer)])

    def _footer(self, canv, doc):
        canv.saveState()
        canv.setStrokeColor(colors.HexColor("#bbbbbb"))
        canv.setLineWidth(0.4)
        canv.line(MARGIN_X, MARGIN_BOTTOM - 12, PAGE_W - MARGIN_X, MARGIN_BOTTOM - 12)
        canv.setFont(FONT, 7.2)
        canv.setFillColor(GREY)
        canv.drawString(MARGIN_X, MARGIN_BOTTOM - 23, self._footer_text)
        canv.drawRightString(PAGE_W - MARGIN_X, MARGIN_BOTTOM - 23, f"page {doc.page}")
        canv.restoreState()

    def afterFlowable(self, flowable):
        mark = getattr(flowable, "toc", None)
        if not isinstance(flowable, _Heading) or mark is None:
            return
        level, text, key = mark
        self.canv.bookmarkPage(key)
        self.canv.addOutlineEntry(text, key, level=level, closed=level > 0)
        self.notify("TOCEntry", (level, text, self.page, key))


class Report:
    """The report's story, built section by section; :meth:`build` lays it out.

    ``savefig`` makes a Report a drop-in for a matplotlib ``PdfPages`` in the section hooks (text_pages.py):
    a figure becomes a numbered figure of the current section, its suptitle the caption.
    """

    def __init__(self, title: str, footer: str | None = None, workers: int = 1):
        register_fonts()
        # figures are converted (SVG, then svglib) in forked workers while the next one is drawn: the conversion
        # is most of a figure's cost, and the story takes each drawing, in order, when the report is built
        self._pool = ForkPool(workers, preload=("svglib.svglib",))
        self._pending: list[tuple] = []  # (handle, the figure's block, its slot there, index in figures)
        self.title = title
        self.footer = footer or title
        self.st = _styles()
        self.story: list = []
        self.figures: list[tuple[str, str, bytes]] = []  # (section folder, file stem, svg) for reports/figures/
        # a section's folder: its number and name, so that a listing sorts as the PDF reads
        self.section = "00_summary"
        self.n_sections = 0
        self.n_figures = self.n_tables = 0
        self._keys = 0
        self.table_log: list[dict] = []  # what each table showed: rows, rows shown, source (for tests and logs)

    # -- text -------------------------------------------------------------------------------------------------
    def add(self, *flowables) -> None:
        self.story.extend(flowables)

    def heading(self, text: str, level: int = 0, new_page: bool = False, toc: bool = True,
                _numbered: bool = True) -> None:
        if new_page and self.story:
            self.story.append(PageBreak())
        elif level == 0 and self.story:
            self.story.append(CondPageBreak(TEXT_H * 0.25))  # no section starts in a page's last quarter
        if level == 0 and _numbered:
            self._begin(text)
        self._keys += 1
        key = f"s{self._keys}"
        self.story.append(_Heading(text, self.st["h1" if level == 0 else "h2"], level, key, toc))

    def paragraph(self, text: str, style: str = "body", markup: bool = False) -> None:
        self.story.append(Paragraph(text if markup else escape(text), self.st[style]))

    def bullets(self, items: list, markup: bool = True) -> None:
        """Bulleted items; an item ``(1, text)`` is a sub-item of the one before."""
        for item in items:
            level, text = item if isinstance(item, tuple) else (0, item)
            self.story.append(Paragraph(text if markup else escape(text), self.st["bullet2" if level else "bullet"],
                                        bulletText="–" if level else "•"))

    @contextlib.contextmanager
    def optional_section(self, text: str):
        """A section whose heading appears only if the block adds something (a hook that may have nothing)."""
        mark, previous = len(self.story), (self.section, self.n_sections)
        self._begin(text)
        yield
        if len(self.story) == mark:
            self.section, self.n_sections = previous
            return
        body = self.story[mark:]
        del self.story[mark:]
        self.heading(text, _numbered=False)
        self.story.extend(body)

    def _begin(self, text: str) -> None:
        self.n_sections += 1
        self.section = f"{self.n_sections:02d}_{slug(text)}"

    def warning(self, text: str, markup: bool = False) -> None:
        self.story.append(Paragraph(text if markup else escape(text), self.st["warning"]))

    def text_block(self, text: str) -> None:
        """Plain text from a section hook: paragraphs split on blank lines; a paragraph whose lines are laid out
        in columns (indented or aligned with runs of spaces) stays monospaced, the rest is set as prose."""
        for part in re.split(r"\n\s*\n", text.strip("\n")):
            lines = part.splitlines()
            if not lines:
                continue
            columnar = any(line.startswith(" ") or re.search(r"\S {2,}\S", line) for line in lines)
            if columnar:
                self.story.append(Preformatted(part, self.st["mono"], maxLineLength=int(TEXT_W / (6.8 * 0.602)),
                                               newLineChars=""))
            else:
                self.story.append(Paragraph(escape(" ".join(s.strip() for s in lines)), self.st["body"]))

    def contents(self) -> None:
        toc = TableOfContents(levelStyles=[self.st["toc1"], self.st["toc2"]], dotsMinLevel=0)
        self.story.append(toc)

    def page_break(self) -> None:
        self.story.append(PageBreak())

    def space(self, h: float = 6) -> None:
        self.story.append(Spacer(1, h))

    # -- figures ----------------------------------------------------------------------------------------------
    def figure(self, fig, caption: str, name: str | None = None, max_height: float = TEXT_H * 0.86,
               markup: bool = False) -> None:
        """A numbered figure with its caption below, kept on one page; also kept as SVG for reports/figures/."""
        self.n_figures += 1
        stem = f"{self.n_figures:02d}_{slug(name or caption)}"
        handle = self._pool.submit(_converted, fig, max_height, what=f"figure {self.n_figures} ({stem})")
        self.figures.append((self.section, stem, b""))  # its SVG once converted (:meth:`finish_figures`)
        body = caption if markup else escape(caption)
        cap = Paragraph(f"<b>Figure {self.n_figures}.</b> {body}", self.st["caption"])
        slot = Spacer(0, 0)  # stands for the drawing until it is converted (a heading may go before it)
        block = [slot, Spacer(1, 3), cap]
        self._pending.append((handle, block, slot, len(self.figures) - 1))
        self._keep(block)

    def finish_figures(self) -> None:
        """Put every converted figure in its place: its drawing in the story, its SVG in ``figures``."""
        for handle, block, slot, k in self._pending:
            svg, drawing = handle.result()
            block[next(i for i, x in enumerate(block) if x is slot)] = drawing
            self.figures[k] = (*self.figures[k][:2], svg)
        self._pending.clear()
        self._pool.close()

    def savefig(self, fig, **_) -> None:
        sup = getattr(fig, "_suptitle", None)
        caption = sup.get_text() if sup is not None else ""
        if sup is not None:
            sup.set_text("")  # it becomes the caption: once is enough
        self.figure(fig, caption or "Figure of the section above.")

    # -- tables -----------------------------------------------------------------------------------------------
    def table(self, df: pd.DataFrame, caption: str, note: str = "", source: str | None = None,
              decimals: dict | None = None, max_rows: int | None = None, markup: bool = False,
              header: dict | None = None) -> None:
        """A numbered table, typeset: caption above, booktabs rules, numbers right-aligned, nothing wrapping,
        never longer than one page (the first rows, and ``source`` named as the file holding all of them).

        ``df`` cells may be strings (printed as they are: the caller rounded them) or numbers (rounded per
        column: ``decimals[col]``, else three significant digits of the column). ``header`` renames columns
        (a "\\n" in a name breaks the header line; put units there)."""
        self.n_tables += 1
        flow, shown = typeset_table(df, decimals, header, self.st)
        total = len(df)
        rows_fit = rows_per_page(flow, total)
        limit = min(x for x in (max_rows, rows_fit, total) if x is not None)
        if limit < total:
            flow, shown = typeset_table(df.iloc[:limit], decimals, header, self.st)
        parts = [caption if markup else escape(caption)]
        cap = Paragraph(f"<b>Table {self.n_tables}.</b> " + parts[0], self.st["caption"])
        notes = []
        if note:
            notes.append(note if markup else escape(note))
        if limit < total:
            notes.append(f"The first {limit} of {total} rows." + (f" All rows: {escape(source)}." if source else ""))
        elif source:
            notes.append(f"Source: {escape(source)}.")
        block = [cap, flow]
        if notes:
            block += [Spacer(1, 2), Paragraph(" ".join(notes), self.st["small"])]
        self._keep(block + [Spacer(1, 8)])
        self.table_log.append({"caption": caption, "rows": total, "shown": shown, "source": source,
                               "table": flow})

    def _keep(self, block: list) -> None:
        # a heading right before a figure or table goes to its page (platypus' keepWithNext stops at containers)
        while self.story and isinstance(self.story[-1], _Heading):
            block.insert(0, self.story.pop())
        self.story.append(KeepTogether(block))

    # -- output -----------------------------------------------------------------------------------------------
    def build(self, out: Path) -> None:
        self.finish_figures()
        doc = _Template(str(out), self.footer, title=self.title, author="embedrobust", subject=self.title,
                        creator="embedrobust report")
        doc.multiBuild(list(self.story))


def _cell_text(v, kind: str, d: int) -> str:
    if kind == "bool":
        return "yes" if bool(v) else "no"
    if kind == "num":
        return F.num(v, d)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return F.DASH
    return str(v)


def _column_kinds(df: pd.DataFrame) -> list[str]:
    kinds = []
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_bool_dtype(s):
            kinds.append("bool")
        elif pd.api.types.is_numeric_dtype(s):
            kinds.append("num")
        else:
            # strings the caller formatted: right-align those that read as numbers
            vals = [str(v) for v in s if isinstance(v, str) and v != F.DASH]
            numeric = bool(vals) and all(re.match(r"^[−+\-]?\d", v) for v in vals)
            kinds.append("numstr" if numeric else "text")
    return kinds


def typeset_table(df: pd.DataFrame, decimals: dict | None = None, header: dict | None = None,
                  styles: dict | None = None):
    """(reportlab Table, rows) for ``df``: the largest font of :data:`TABLE_FONT_SIZES` at which the natural
    column widths fit the text width; below the smallest, the widest text column is cut with an ellipsis.
    Cells never wrap."""
    register_fonts()
    decimals = decimals or {}
    header = header or {}
    kinds = _column_kinds(df)
    cols = list(df.columns)
    dec = {c: decimals.get(c, F.auto_decimals(df[c]) if k == "num" else 0) for c, k in zip(cols, kinds)}
    body = [[_cell_text(v, k, dec[c]) for v, c, k in zip(row, cols, kinds)] for row in df.itertuples(index=False)]
    head = [str(header.get(c, c)) for c in cols]

    def natural(fs: float, rows, heads) -> list[float]:
        out = []
        for j, h in enumerate(heads):
            w = max(stringWidth(line, BOLD, fs) for line in h.split("\n"))
            for r in rows:
                w = max(w, stringWidth(r[j], FONT, fs))
            out.append(w + 2 * CELL_PAD + 0.5)
        return out

    def layout(fs: float, rows):
        # a raw column name (a hook's table) may break at its underscores, down to the width of its cells
        heads = [_header_lines(h, fs, max([stringWidth(r[j], FONT, fs) for r in rows] or [0]))
                 for j, h in enumerate(head)]
        return heads, natural(fs, rows, heads)

    fs = TABLE_FONT_SIZES[-1]
    for size in TABLE_FONT_SIZES:
        if sum(layout(size, body)[1]) <= TEXT_W:
            fs = size
            break
    heads, w = layout(fs, body)
    for _ in range(len(cols)):
        if sum(w) <= TEXT_W:
            break
        # cut the widest text column just enough (a list of names, a note): never wrap
        text_cols = [j for j, k in enumerate(kinds) if k == "text"]
        if not text_cols:
            break
        j = max(text_cols, key=lambda i: w[i])
        room = w[j] - (sum(w) - TEXT_W) - 2 * CELL_PAD - 0.5
        if room < stringWidth("…", FONT, fs) * 4:
            break
        body = [[_clip(c, room, fs) if i == j else c for i, c in enumerate(r)] for r in body]
        heads, w = layout(fs, body)
    head = heads
    data = [head] + body
    t = Table(data, colWidths=w, repeatRows=1, hAlign="LEFT")
    right = [j for j, k in enumerate(kinds) if k in ("num", "numstr")]
    style = [
        ("FONT", (0, 0), (-1, 0), BOLD, fs),
        ("FONT", (0, 1), (-1, -1), FONT, fs),
        ("LEADING", (0, 0), (-1, -1), fs + 1.6),
        ("VALIGN", (0, 0), (-1, 0), "BOTTOM"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.3),
        ("LEFTPADDING", (0, 0), (-1, -1), CELL_PAD),
        ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PAD),
        ("LINEABOVE", (0, 0), (-1, 0), 0.9, RULE),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, RULE),
        ("LINEBELOW", (0, -1), (-1, -1), 0.9, RULE),
    ]
    for j in right:
        style.append(("ALIGN", (j, 0), (j, -1), "RIGHT"))
    for i in range(2, len(data), 2):
        style.append(("BACKGROUND", (0, i), (-1, i), ZEBRA))
    t.setStyle(TableStyle(style))
    if sum(w) > TEXT_W:
        # nothing left to cut (all numbers): set the whole table smaller rather than past the margin
        return KeepInFrame(TEXT_W, 10 * TEXT_H, [t], mode="shrink", hAlign="LEFT"), len(body)
    return t, len(body)


def _header_lines(h: str, fs: float, target: float) -> str:
    if "\n" in h or stringWidth(h, BOLD, fs) <= target:
        return h
    pieces = re.split(r"(?<=[_ ])", h)
    lines, cur = [], ""
    for p in pieces:
        if cur and stringWidth((cur + p).rstrip(), BOLD, fs) > target:
            lines.append(cur.rstrip())
            cur = p
        else:
            cur += p
    lines.append(cur.rstrip())
    return "\n".join(lines)


def _clip(text: str, room: float, fs: float) -> str:
    if stringWidth(text, FONT, fs) <= room:
        return text
    while text and stringWidth(text + "…", FONT, fs) > room:
        text = text[:-1]
    return text + "…"


def rows_per_page(table: Table, n_rows: int, reserve: float = 110.0) -> int:
    """How many body rows of ``table`` fit one page under a caption and a note (``reserve`` points)."""
    if n_rows == 0:
        return 0
    if isinstance(table, KeepInFrame):
        table = table._content[0]  # shrunk to the width: its rows only get shorter
    table.wrap(TEXT_W, 10 * TEXT_H)
    heights = table._rowHeights
    head, row = heights[0], max(heights[1:]) if len(heights) > 1 else heights[0]
    return max(1, int((TEXT_H - reserve - head) // row))


def text_pages(doc: Report, title: str, text: str) -> None:
    """The section hooks' text page: a sub-heading and the text (see :meth:`Report.text_block`)."""
    doc.heading(title, level=1)
    doc.text_block(text)


def table_page(doc: Report, title: str, df: pd.DataFrame, note: str = "", source: str | None = None) -> None:
    """The section hooks' table page: a numbered, typeset table."""
    doc.table(df, title, note=" ".join(note.split()), source=source)


__all__ = ["Report", "figure_svg", "register_fonts", "rows_per_page", "slug", "svg_drawing", "table_page",
           "text_pages", "typeset_table", "FIG_WIDTH_IN", "TEXT_W", "TEXT_H"]
