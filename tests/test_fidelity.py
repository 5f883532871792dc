"""``docsight bench fidelity``: bare docling against docsight on a folder of documents (issue 12).

The scenario runs for real on a small folder (real docling, real extraction), and its verdicts are
checked; the table reading and the figure coverage are plain functions.
"""

from __future__ import annotations

import json
import shutil

import pytest

from docsight.benchmarks import BenchOptions
from docsight.benchmarks import fidelity
from docsight.benchmarks import fidelity_corpus as corpus
from docsight.cli import build_parser


def test_markdown_tables_are_read_by_a_parser():
    table = "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n"
    assert fidelity.markdown_tables(f"# T\n\n{table}\ntext\n\n{table}") == [3, 3]
    # a description inserted into a row ends the table there: the parser sees fewer rows
    broken = "| a | b |\n|---|---|\n| 1 | 2 |\n\n> **Picture 1:** a photo\n\n| 3 | 4 |\n"
    assert fidelity.markdown_tables(broken) != [3]
    assert fidelity.markdown_tables("no table | here") == []


def test_the_folder_argument_goes_with_the_fidelity_scenario(tmp_path):
    args = build_parser().parse_args(["bench", "fidelity", str(tmp_path)])
    assert (args.scenario, args.folder) == ("fidelity", tmp_path)
    assert build_parser().parse_args(["bench", "fidelity"]).folder is None


def test_fidelity_on_a_folder_lists_every_picture_and_counts_calls_per_figure(tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    manifest = {"figures_fragments.pdf": corpus.pdf_fragments(folder / "figures_fragments.pdf"),
                "tables_and_remote.md": corpus.markdown_tables(folder / "tables_and_remote.md"),
                "office_metafiles.docx": corpus.docx_metafiles(folder / "office_metafiles.docx")}
    (folder / corpus.MANIFEST).write_text(json.dumps(manifest))
    (folder / "notes.txt").write_text("not a document: ignored")
    result = fidelity.run(BenchOptions(workdir=tmp_path / "work", folder=folder, progress=lambda message: None))
    figures = {f.name: f for table in result.tables for f in table.figures}
    assert figures["documents lost (docsight fails them whole)"].value == 0
    reported = figures["pictures docling reports (body and furniture)"].value
    assert reported == 16 + 5 + 3  # bitmaps of the PDF, pictures of the Markdown and the DOCX
    assert figures["of those, listed by docsight with status and reason"].value == reported
    assert figures["PDF: pictures sent per figure (docsight)"].value == pytest.approx(1.0)
    assert figures["PDF: pictures per figure, bare docling (one per bitmap)"].value == pytest.approx(2.0)
    assert figures["tables_and_remote.md:   skipped: remote_picture"].value == 2
    met, missed = result.targets()
    assert missed == 0 and met >= 5
    documents = {entry["file"] for entry in result.data["documents"]}
    assert documents == set(manifest)


def test_a_document_docsight_fails_counts_as_lost(tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "empty.pdf").write_bytes(b"")
    shutil.copy(corpus.__file__, folder / "not_a_document.py")
    result = fidelity.run(BenchOptions(workdir=tmp_path / "work", folder=folder, progress=lambda message: None))
    lost = next(f for f in result.tables[0].figures if f.name.startswith("documents lost"))
    assert lost.value == 1 and lost.met is False
