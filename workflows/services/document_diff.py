"""Document diff: what changed between two versions of one node's document.

See docs/generation.md, "Document diff".

A version regenerated in a later run, or (later) a reviewer's edit, is another Document of the same
workflow and node key, so one comparison covers them all: a unified diff of the lines and a word-level
diff of spans a page can lay out side by side.
"""

import difflib
import re
from typing import Literal, TypedDict

from django.core.exceptions import ValidationError

from accounts.models import User
from workflows.models import Document
from workflows.selectors import document_get

# Each text is at most this many characters: the word diff's matching grows faster than linearly with
# the text, and a request must stay a request (see MAX_BLOCK_WORDS).
MAX_DIFF_CHARS = 200_000

AGAINST_PREVIOUS = "previous"
UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
AGAINST_PATTERN = f"^({AGAINST_PREVIOUS}|{UUID_PATTERN})$"
AGAINST_HELP = '"previous" (the version this one replaced) or the id of another version of the same node\'s document.'
NOT_AN_AGAINST = 'Must be "previous" or a document id.'
NO_PREVIOUS = "This document has no previous version to compare with; name another version by its id."
OTHER_NODE = "Only versions of the same node's document can be compared."
TOO_LARGE = "Documents longer than {limit:,} characters are not compared; download both versions instead."

# A word's characters or one other character, each with the whitespace after it (and whitespace
# that starts a text): joined again they give the text back exactly. Whitespace rides along because
# on its own it would be the commonest token by far, and matching is slow in the commonest token.
TOKEN = re.compile(r"\w+\s*|[^\w\s]\s*|\s+")
# A changed block of lines with more words than this (on either side) is not matched word by word.
MAX_BLOCK_WORDS = 4_000
# A line with the blank lines after it (blank lines on their own would be the commonest line), or
# the blank lines that start a text.
LINE = re.compile(r"[^\n]*\n+|[^\n]+")
WORD = re.compile(r"\w+|[^\w\s]")


class Span(TypedDict):
    op: Literal["equal", "insert", "delete"]
    text: str


class WordStats(TypedDict):
    insertions: int
    deletions: int
    unchanged: int


def diff_base(user: User, document: Document, against: str) -> Document:
    """The version `document` is compared with: its previous one, or the one `against` names.

    A document the caller cannot see is a 404 (the same as an unknown id); one of another workflow or
    node is a 400 on `against`.
    """
    if not re.fullmatch(AGAINST_PATTERN, against):
        raise ValidationError({"against": [NOT_AN_AGAINST]})
    if against == AGAINST_PREVIOUS:
        if document.previous_id is None:
            raise ValidationError({"against": [NO_PREVIOUS]})
        # The previous version is in the same workspace, so whoever sees the document sees it.
        return Document.objects.get(pk=document.previous_id)
    base = document_get(user, against)
    if (base.workflow_id, base.node_key) != (document.workflow_id, document.node_key):
        raise ValidationError({"against": [OTHER_NODE]})
    return base


def document_diff(base: Document, document: Document) -> dict:
    """The changes from `base` to `document`: a unified diff, word spans and word counts."""
    if len(base.content) > MAX_DIFF_CHARS or len(document.content) > MAX_DIFF_CHARS:
        raise ValidationError(TOO_LARGE.format(limit=MAX_DIFF_CHARS))
    words = word_diff(base.content, document.content)
    return {
        "document": document,
        "against": base,
        "unified": unified_diff(base.content, document.content, f"v{base.version}", f"v{document.version}"),
        "words": words,
        "stats": word_stats(words),
    }


def unified_diff(old: str, new: str, old_label: str, new_label: str, context: int = 3) -> str:
    """`diff -u` of the two texts' lines, headed by the labels; empty when the texts are equal."""
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), fromfile=old_label, tofile=new_label, n=context, lineterm=""
    )
    return "".join(f"{line}\n" for line in lines)


def word_diff(old: str, new: str) -> list[Span]:
    """The two texts as spans: equal ones in both, deleted ones only in `old`, inserted ones only in
    `new`. Joining the equal and deleted spans gives `old` back, the equal and inserted ones `new`.

    Lines are matched first, then the words of each changed block of lines: matching grows faster
    than linearly, and a block is far smaller than the text. A block of more than MAX_BLOCK_WORDS
    words on either side is matched line by line when both sides have as many lines (an edit all
    through a text), else deleted and inserted whole.
    """
    old_lines, new_lines = LINE.findall(old), LINE.findall(new)
    spans: list[Span] = []
    for tag, old_start, old_end, new_start, new_end in _opcodes(old_lines, new_lines):
        old_block, new_block = old_lines[old_start:old_end], new_lines[new_start:new_end]
        if tag == "replace":
            _changed_block(spans, old_block, new_block)
        elif tag == "insert":
            _append(spans, "insert", "".join(new_block))
        else:
            _append(spans, "equal" if tag == "equal" else "delete", "".join(old_block))
    return spans


def _changed_block(spans: list[Span], old_lines: list[str], new_lines: list[str]) -> None:
    old, new = "".join(old_lines), "".join(new_lines)
    old_tokens, new_tokens = TOKEN.findall(old), TOKEN.findall(new)
    if max(len(old_tokens), len(new_tokens)) <= MAX_BLOCK_WORDS:
        _words(spans, old_tokens, new_tokens)
    elif len(old_lines) == len(new_lines) > 1:
        for old_line, new_line in zip(old_lines, new_lines, strict=True):
            _changed_block(spans, [old_line], [new_line])
    else:
        _append(spans, "delete", old)
        _append(spans, "insert", new)


def _words(spans: list[Span], old_tokens: list[str], new_tokens: list[str]) -> None:
    # Tokens are matched by their word alone: "Bob" stays "Bob" when a line break after it is added.
    old_keys, new_keys = [token.rstrip() or token for token in old_tokens], [t.rstrip() or t for t in new_tokens]
    for tag, old_start, old_end, new_start, new_end in _opcodes(old_keys, new_keys):
        if tag == "equal":
            for old_token, new_token in zip(old_tokens[old_start:old_end], new_tokens[new_start:new_end], strict=True):
                _same_word(spans, old_token, new_token)
            continue
        old_text, new_text = "".join(old_tokens[old_start:old_end]), "".join(new_tokens[new_start:new_end])
        if tag == "replace":
            # "quick " → "slow ": the space after the word did not change (it only rides along).
            kept = _common_trailing_whitespace(old_text, new_text)
            _append(spans, "delete", old_text[: len(old_text) - len(kept)])
            _append(spans, "insert", new_text[: len(new_text) - len(kept)])
            _append(spans, "equal", kept)
        elif tag == "insert":
            _append(spans, "insert", new_text)
        else:
            _append(spans, "delete", old_text)


def _same_word(spans: list[Span], old: str, new: str) -> None:
    """One word in both texts, the whitespace after it perhaps changed."""
    word = old.rstrip() or old
    old_space, new_space = old[len(word) :], new[len(word) :]
    common = 0
    while common < min(len(old_space), len(new_space)) and old_space[common] == new_space[common]:
        common += 1
    _append(spans, "equal", word + old_space[:common])
    _append(spans, "delete", old_space[common:])
    _append(spans, "insert", new_space[common:])


def _common_trailing_whitespace(old: str, new: str) -> str:
    old_space, new_space = old[len(old.rstrip()) :], new[len(new.rstrip()) :]
    length = 0
    while length < min(len(old_space), len(new_space)) and old_space[-1 - length] == new_space[-1 - length]:
        length += 1
    return old_space[len(old_space) - length :]


def _opcodes(old: list[str], new: list[str]) -> list[tuple[str, int, int, int, int]]:
    # autojunk would treat the commonest items of a longer text (blank lines, "the ") as junk and
    # match nothing around them: whole paragraphs would show as deleted and inserted.
    return difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()


def _append(spans: list[Span], op: Literal["equal", "insert", "delete"], text: str) -> None:
    if not text:
        return
    if spans and spans[-1]["op"] == op:
        spans[-1]["text"] += text
    else:
        spans.append({"op": op, "text": text})


def word_stats(spans: list[Span]) -> WordStats:
    """Words inserted, deleted and unchanged (a punctuation mark counts as a word; whitespace does not)."""
    counts = {"equal": 0, "insert": 0, "delete": 0}
    for span in spans:
        counts[span["op"]] += len(WORD.findall(span["text"]))
    return {"insertions": counts["insert"], "deletions": counts["delete"], "unchanged": counts["equal"]}
