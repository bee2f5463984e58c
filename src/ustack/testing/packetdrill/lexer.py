# SPDX-License-Identifier: MIT
"""Tokens of the packetdrill script language (in the spirit of packetdrill's lexer.l).

Numbers: ``12`` (int), ``0x02`` (hex), ``0.10`` and ``.1`` (float; ``1.`` is an
int and a dot, so that ``0...0.05`` and flags such as ``S.`` lex as packetdrill
lexes them). Comments are ``//`` and ``/* */``; backticks, ``%{ }%`` blocks and
strings are single tokens; ``--name=value`` header lines are OPTION tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class ScriptError(Exception):
    """A script that cannot be parsed (or uses syntax the runner does not know)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Token:
    kind: str  # INT HEX FLOAT WORD STRING BACKQ CODE OPTION IPV4 ELLIPSIS PUNCT EOF
    text: str
    line: int
    start: int  # offsets in the source: adjacent tokens have end == next start
    end: int

    def is_punct(self, char: str) -> bool:
        return self.kind in ("PUNCT", "ELLIPSIS") and self.text == char

    def is_word(self, *names: str) -> bool:
        return self.kind == "WORD" and (not names or self.text in names)

    @property
    def value(self) -> int:
        if self.kind == "HEX":
            return int(self.text, 16)
        return int(self.text)


_SPEC = [
    ("NEWLINE", r"\n"),
    ("SPACE", r"[ \t\r\f\v]+"),
    ("COMMENT", r"//[^\n]*|/\*.*?\*/"),
    ("CODE", r"%\{.*?\}%"),
    ("BACKQ", r"`[^`]*`"),
    ("STRING", r'"(?:\\.|[^"\\])*"'),
    ("OPTION", r"--[A-Za-z0-9_]+(?:=\S*)?"),
    ("ELLIPSIS", r"\.\.\."),
    ("IPV4", r"\d+\.\d+\.\d+\.\d+"),
    ("HEX", r"0[xX][0-9a-fA-F]+"),
    ("FLOAT", r"\d+\.\d+|\.\d+"),
    ("INT", r"\d+"),
    ("WORD", r"[A-Za-z_][A-Za-z0-9_]*"),
    ("PUNCT", r"[<>:()\[\]{},=|+*~\-.!/&]"),
]
_TOKEN = re.compile("|".join(f"(?P<{name}>{rx})" for name, rx in _SPEC), re.DOTALL)


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    line = 1
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise ScriptError(line, f"unexpected character {source[pos]!r}")
        kind = m.lastgroup or ""
        text = m.group()
        if kind not in ("NEWLINE", "SPACE", "COMMENT"):
            if kind == "BACKQ":
                text = text[1:-1]
            elif kind == "CODE":
                text = text[2:-2]
            elif kind == "STRING":
                text = bytes(text[1:-1], "utf-8").decode("unicode_escape")
            tokens.append(Token(kind, text, line, m.start(), m.end()))
        line += m.group().count("\n")
        pos = m.end()
    tokens.append(Token("EOF", "", line, pos, pos))
    return tokens
