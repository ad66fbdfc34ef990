"""``users``: manage the accounts file of a hosted dashboard (salted PBKDF2 hashes; ``MIA_USERS`` points at it)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="add, replace or list the accounts of a hosted dashboard (MIA_USERS=file)")
    p.add_argument("action", choices=["add", "list"])
    p.add_argument("user", nargs="?", help="add: the user name")
    p.add_argument("--file", type=Path, required=True, help="the users file (created with mode 0600)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.dashboard.accounts import add_user, read_users_file

    if args.action == "list":
        for user in read_users_file(args.file) if args.file.is_file() else {}:
            print(user)
        return 0
    if not args.user:
        raise ValueError("users add: name the user")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the two passwords differ")
    add_user(args.file, args.user, password)
    print(f"{args.user} added to {args.file}")
    return 0
