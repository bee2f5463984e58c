# SPDX-License-Identifier: MIT
"""Reading a token list: the helpers every part of the parser shares."""

from __future__ import annotations

from ustack.testing.packetdrill.lexer import ScriptError, Token


class TokenStream:
    def __init__(self, tokens: list[Token], path: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.path = path

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tokens[self.pos]
        if tok.kind != "EOF":
            self.pos += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> ScriptError:
        tok = tok or self.tok
        found = tok.text or tok.kind
        return ScriptError(tok.line, f"{message} (at {found!r})")

    def expect_punct(self, char: str) -> Token:
        if not self.tok.is_punct(char):
            raise self.error(f"expected {char!r}")
        return self.next()

    def expect_word(self, *names: str) -> Token:
        if not self.tok.is_word(*names):
            raise self.error(f"expected {' or '.join(names) or 'a word'}")
        return self.next()

    def integer(self) -> int:
        negative = False
        if self.tok.is_punct("-") and self.peek().kind in ("INT", "HEX"):
            self.next()
            negative = True
        if self.tok.kind not in ("INT", "HEX"):
            raise self.error("expected an integer")
        value = self.next().value
        return -value if negative else value

    def number_usecs(self) -> int:
        tok = self.tok
        if tok.kind == "FLOAT":
            self.next()
            return round(float(tok.text) * 1_000_000)
        if tok.kind == "INT":
            self.next()
            return tok.value * 1_000_000
        raise self.error("expected a time")

    def blob(self) -> str:
        """Adjacent tokens read as one word (a hex cookie such as 1a2b3c4d)."""
        if self.tok.kind not in ("INT", "WORD", "HEX"):
            return ""
        first = self.next()
        text, end = first.text, first.end
        while self.tok.kind in ("INT", "WORD") and self.tok.start == end:
            end = self.tok.end
            text += self.next().text
        return text
