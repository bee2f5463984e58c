# SPDX-License-Identifier: MIT
"""Parsing system calls and their argument expressions:
``getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNRESET], [4]) = 0`` and
``connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)``."""

from __future__ import annotations

from ustack.testing.packetdrill.model import (
    ELLIPSIS,
    BinaryExpr,
    CallExpr,
    Expr,
    ListExpr,
    StructExpr,
    Syscall,
    TimeSpec,
    Word,
)
from ustack.testing.packetdrill.tokens import TokenStream


class SyscallParser(TokenStream):
    # --- system calls --------------------------------------------------------------------------

    def syscall(self, line: int, time: TimeSpec) -> Syscall:
        end = None
        if self.tok.kind == "ELLIPSIS":
            self.next()
            end = self.number_usecs()
        name = self.expect_word().text
        self.expect_punct("(")
        args: list[Expr] = []
        if not self.tok.is_punct(")"):
            args = self.expr_list(")")
        self.expect_punct(")")
        self.expect_punct("=")
        result = self.expr()
        call = Syscall(line, time, name, tuple(args), result, end=end)
        if self.tok.kind == "WORD" and self.peek().is_punct("("):
            call.errno = self.next().text
            call.note = self.note()
        elif self.tok.is_punct("("):
            call.note = self.note()
        return call

    def note(self) -> str:
        self.expect_punct("(")
        depth, words = 1, list[str]()
        while True:
            tok = self.next()
            if tok.kind == "EOF":
                raise self.error("unterminated note")
            if tok.is_punct("("):
                depth += 1
            elif tok.is_punct(")"):
                depth -= 1
                if depth == 0:
                    return " ".join(words)
            words.append(tok.text)

    def expr_list(self, close: str) -> list[Expr]:
        items = [self.expr()]
        while self.tok.is_punct(","):
            self.next()
            items.append(self.expr())
        if not self.tok.is_punct(close):
            raise self.error(f"expected ',' or {close!r}")
        return items

    def expr(self) -> Expr:
        value = self.primary()
        while self.tok.is_punct("|"):
            self.next()
            value = BinaryExpr("|", value, self.primary())
        return value

    def primary(self) -> Expr:
        tok = self.tok
        if tok.kind == "ELLIPSIS":
            self.next()
            return ELLIPSIS
        if tok.kind in ("INT", "HEX") or (tok.is_punct("-") and self.peek().kind in
                                          ("INT", "HEX")):
            return self.integer()
        if tok.kind == "STRING":
            text = ""
            while self.tok.kind == "STRING":
                text += self.next().text
            if self.tok.kind == "ELLIPSIS":
                self.next()
            return text
        if tok.kind == "WORD":
            self.next()
            if self.tok.is_punct("("):
                self.next()
                args = self.expr_list(")") if not self.tok.is_punct(")") else []
                self.expect_punct(")")
                return CallExpr(tok.text, tuple(args))
            return Word(tok.text)
        if tok.is_punct("["):
            self.next()
            items = self.expr_list("]") if not self.tok.is_punct("]") else []
            self.expect_punct("]")
            return ListExpr(tuple(items))
        if tok.is_punct("{"):
            self.next()
            fields: list[tuple[str | None, Expr]] = []
            while not self.tok.is_punct("}"):
                if self.tok.kind == "WORD" and self.peek().is_punct("="):
                    name: str | None = self.next().text
                    self.next()
                else:
                    name = None
                fields.append((name, self.expr()))
                if not self.tok.is_punct("}"):
                    self.expect_punct(",")
            self.next()
            return StructExpr(tuple(fields))
        raise self.error("expected an expression")
