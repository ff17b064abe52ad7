#!/usr/bin/env python3
"""Interop check: a real QuickFIX engine (the `quickfix` Python binding) as
the client of a running fixgw.

Four initiator sessions in one settings file, all with UseDataDictionary=Y
pointing at QuickFIX's OWN FIX44.xml, so QuickFIX validates every message it
receives:

- CLIENT1 and CLIENT2 (order entry) place a resting order, fill it from the
  other session (partial, then full), cancel, replace up and down, ask for
  status, cancel an unknown order, mass-cancel, get a risk reject and leave a
  few orders resting, checking every ExecutionReport a client would check.
- MDCLIENT (market data) gets a MarketDataRequestReject for an unknown
  symbol, subscribes to AAPL (full book and top of book) before the trading,
  rebuilds both books from W + X (MDUpdateAction at MDEntryPositionNo) and
  checks them against the orders the two clients know are resting, and
  against a fresh snapshot; checks that the trades on the feed are the fills
  the clients got; unsubscribes and checks that no X follows.
- DROPCOPY gets a copy (797=Y, OnBehalfOfCompID = the client) of every
  ExecutionReport and OrderCancelReject the two clients got, in each client's
  order, with the same body.

Exit status 0 when everything matched; otherwise non-zero with the reasons on
stderr. A failure is any expected reply that is missing or wrong, any Reject
(35=3) or BusinessMessageReject (35=j) that QuickFIX sends (it sends one when
a received message fails validation), any Reject the gateway sends, any
Logout we did not ask for, and any validation error in QuickFIX's event log.

Usage: quickfix_client.py --port PORT [--host 127.0.0.1] [--timeout 10]
"""

import argparse
import glob
import os
import queue
import shutil
import site
import sys
import sysconfig
import tempfile
import threading
import time
from collections import Counter
from decimal import Decimal

try:
    import quickfix as fix
except ImportError as e:  # pragma: no cover - reported by tests/interop.rs
    print(
        f"quickfix_client.py: cannot import quickfix ({e}); run .ci/install-quickfix",
        file=sys.stderr,
    )
    sys.exit(3)

SOH = "\x01"
ORDER_ENTRY = ("CLIENT1", "CLIENT2")
SESSIONS = ORDER_ENTRY + ("MDCLIENT", "DROPCOPY")
# `expect` check value: the tag must not be there.
ABSENT = object()


def quickfix_fix44_xml():
    """QuickFIX's own FIX44.xml, found the way .ci/install-quickfix finds it."""
    env = os.environ.get("QUICKFIX_FIX44_XML")
    if env and os.path.isfile(env):
        return env
    prefixes = [sys.prefix, sysconfig.get_path("data"), site.USER_BASE]
    candidates = [os.path.join(p, "share", "quickfix", "FIX44.xml") for p in prefixes if p]
    candidates += ["/usr/share/quickfix/FIX44.xml", "/usr/local/share/quickfix/FIX44.xml"]
    for c in candidates:
        if os.path.isfile(c):
            return c
    return None


def show(msg):
    return msg.toString().replace(SOH, "|")


def msg_type(msg):
    return msg.getHeader().getField(35)


def field(msg, tag):
    if msg.isSetField(tag):
        return msg.getField(tag)
    if msg.getHeader().isSetField(tag):
        return msg.getHeader().getField(tag)
    return None


class Failures:
    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, text):
        with self.lock:
            self.items.append(text)
        print(f"FAIL: {text}", file=sys.stderr, flush=True)


class App(fix.Application):
    """Queues every application message per session; records every reject."""

    def __init__(self, failures):
        super().__init__()
        self.failures = failures
        self.inbox = {}
        self.logged_on = {}
        self.expect_logout = False

    def _name(self, session_id):
        return session_id.getSenderCompID().getValue()

    def onCreate(self, session_id):
        name = self._name(session_id)
        self.inbox[name] = queue.Queue()
        self.logged_on[name] = threading.Event()

    def onLogon(self, session_id):
        self.logged_on[self._name(session_id)].set()

    def onLogout(self, session_id):
        self.logged_on[self._name(session_id)].clear()

    def toAdmin(self, msg, session_id):
        t = msg_type(msg)
        name = self._name(session_id)
        if t == "3":
            self.failures.add(f"{name}: QuickFIX sent a Reject: {show(msg)}")
        elif t == "5" and not self.expect_logout:
            self.failures.add(f"{name}: QuickFIX sent an unexpected Logout: {show(msg)}")
        elif t == "2":
            self.failures.add(f"{name}: QuickFIX had to send a ResendRequest: {show(msg)}")

    def fromAdmin(self, msg, session_id):
        t = msg_type(msg)
        name = self._name(session_id)
        if t == "3":
            self.failures.add(f"{name}: the gateway sent a Reject: {show(msg)}")
        elif t == "5" and not self.expect_logout:
            self.failures.add(f"{name}: the gateway logged us out: {show(msg)}")

    def toApp(self, msg, session_id):
        if msg_type(msg) == "j":
            self.failures.add(
                f"{self._name(session_id)}: QuickFIX sent a BusinessMessageReject: {show(msg)}"
            )

    def fromApp(self, msg, session_id):
        # Reached only for messages that passed QuickFIX's validation.
        self.inbox[self._name(session_id)].put(fix.Message(msg))


class Scenario:
    def __init__(self, app, sessions, failures, timeout):
        self.app = app
        self.sessions = sessions
        self.failures = failures
        self.timeout = timeout
        # Every application message each session received, in order.
        self.got = {name: [] for name in SESSIONS}
        self.md_stats = {"W": 0, "X": 0, "Y": 0, "entries": 0, "trades": 0}
        self.copies = 0

    def send(self, name, mtype, fields, groups=()):
        """`groups`: (count tag, delimiter tag, [[(tag, value), ...] per entry])."""
        msg = fix.Message()
        msg.getHeader().setField(fix.MsgType(mtype))
        for tag, value in fields:
            msg.setField(fix.StringField(tag, str(value)))
        for count, delim, entries in groups:
            for entry in entries:
                g = fix.Group(count, delim)
                for tag, value in entry:
                    g.setField(fix.StringField(tag, str(value)))
                msg.addGroup(g)
        if not fix.Session.sendToTarget(msg, self.sessions[name]):
            self.failures.add(f"{name}: could not send {show(msg)}")

    def recv(self, name, what):
        try:
            msg = self.app.inbox[name].get(timeout=self.timeout)
            self.got[name].append(msg)
            return msg
        except queue.Empty:
            self.failures.add(f"{name}: no reply within {self.timeout}s (expected {what})")
            raise Abort()

    def expect(self, name, mtype, checks, what):
        """Next application message of `name`: type `mtype` and the fields in
        `checks` ({tag: value}; values compared as decimals when numeric-looking
        in the expectation, tag -> None means 'must be present', tag -> ABSENT
        'must not be present')."""
        return self.check(name, self.recv(name, what), mtype, checks, what)

    def check(self, name, msg, mtype, checks, what):
        """`expect` on a message already received."""
        problems = []
        if msg_type(msg) != mtype:
            problems.append(f"35={msg_type(msg)}, expected 35={mtype}")
        for tag, want in checks.items():
            got = field(msg, tag)
            if want is ABSENT:
                if got is not None:
                    problems.append(f"{tag}={got}, expected no {tag}")
                continue
            if want is None:
                if got is None:
                    problems.append(f"{tag} missing")
                continue
            if got is None:
                problems.append(f"{tag} missing (expected {want})")
            elif isinstance(want, Decimal):
                try:
                    if Decimal(got) != want:
                        problems.append(f"{tag}={got}, expected {want}")
                except Exception:
                    problems.append(f"{tag}={got} is not a number (expected {want})")
            elif got != want:
                problems.append(f"{tag}={got}, expected {want}")
        if problems:
            self.failures.add(f"{name}: {what}: {'; '.join(problems)} in {show(msg)}")
        return msg

    def nothing_more(self, name, wait=0.3):
        try:
            msg = self.app.inbox[name].get(timeout=wait)
            self.failures.add(f"{name}: unexpected message {show(msg)}")
        except queue.Empty:
            pass

    def new_order(self, name, cl, side, qty, px, symbol="AAPL"):
        self.send(
            name,
            "D",
            [
                (11, cl), (21, "1"), (38, qty), (40, "2"), (44, px), (54, side),
                (55, symbol), (59, "0"), (60, now()),
            ],
        )

    def run(self):
        self.md_unknown_symbol()
        full = self.subscribe("MD1", depth=0, types="012")
        top = self.subscribe("MDTOP", depth=1, types="01")
        self.order_entry_steps()
        self.leave_a_book()
        # Everything the two subscriptions were sent up to now precedes the
        # answer to a later request on the same session.
        snap = self.md_sync("MD2", [full, top])
        for book in (full, top):
            self.compare_book(book, self.expected_levels(book.depth), "order flow")
            self.compare_book(book, snap.levels(book.depth), "snapshot MD2")
        self.compare_trades(full)
        self.compare_last_trade(snap, full.last_trade)
        self.unsubscribe(full)
        self.unsubscribe(top)
        self.trade_after_unsubscribe()
        snap = self.md_sync("MD3", [])
        self.compare_book(snap, self.expected_levels(0), "order flow")
        self.compare_last_trade(snap, (Decimal("149.5"), Decimal(50)))
        self.drop_copy()
        for name in SESSIONS:
            self.nothing_more(name)
        st = self.md_stats
        print(f"market data: {st['W']} W, {st['X']} X, {st['Y']} Y, {st['entries']} entries, "
              f"{st['trades']} trades; drop copy: {self.copies} copies", flush=True)

    # ---------------------------------------------------------------- order entry

    def order_entry_steps(self):
        D = Decimal
        er = self.expect
        # 1. A resting sell from CLIENT1.
        self.new_order("CLIENT1", "S1", "2", "100", "150.00")
        s1 = er("CLIENT1", "8", {150: "0", 39: "0", 11: "S1", 54: "2", 55: "AAPL", 38: D(100),
                                 44: D(150), 151: D(100), 14: D(0), 6: D(0), 37: None, 17: None},
                "New for S1")
        # 2. CLIENT2 takes 40 of it: a partial fill for CLIENT1.
        self.new_order("CLIENT2", "B1", "1", "40", "150.00")
        er("CLIENT2", "8", {150: "0", 39: "0", 11: "B1"}, "New for B1")
        t1 = er("CLIENT2", "8", {150: "F", 39: "2", 11: "B1", 32: D(40), 31: D(150), 14: D(40),
                                 151: D(0), 6: D(150)}, "fill of B1")
        m1 = er("CLIENT1", "8", {150: "F", 39: "1", 11: "S1", 32: D(40), 31: D(150), 14: D(40),
                                 151: D(60), 6: D(150), 37: field(s1, 37)}, "partial fill of S1")
        # 3. The rest (60) at a higher limit still trades at the resting price.
        self.new_order("CLIENT2", "B2", "1", "60", "150.50")
        er("CLIENT2", "8", {150: "0", 39: "0", 11: "B2"}, "New for B2")
        er("CLIENT2", "8", {150: "F", 39: "2", 11: "B2", 32: D(60), 31: D(150), 14: D(60),
                            151: D(0), 6: D(150)}, "fill of B2")
        er("CLIENT1", "8", {150: "F", 39: "2", 11: "S1", 32: D(60), 31: D(150), 14: D(100),
                            151: D(0), 6: D(150)}, "full fill of S1")
        if field(t1, 17) == field(m1, 17):
            self.failures.add("the two sides of a trade share an ExecID")
        # 4. Cancel.
        self.new_order("CLIENT1", "S2", "2", "100", "151.00")
        er("CLIENT1", "8", {150: "0", 39: "0", 11: "S2"}, "New for S2")
        self.send("CLIENT1", "F", [(11, "S2-C"), (41, "S2"), (54, "2"), (55, "AAPL"), (38, "100"),
                                   (60, now())])
        er("CLIENT1", "8", {150: "4", 39: "4", 11: "S2-C", 41: "S2", 151: D(0)}, "cancel of S2")
        # 5. Replace up, then down.
        self.new_order("CLIENT1", "S3", "2", "100", "152.00")
        er("CLIENT1", "8", {150: "0", 39: "0", 11: "S3"}, "New for S3")
        self.send("CLIENT1", "G", [(11, "S3-R1"), (41, "S3"), (21, "1"), (38, "150"), (40, "2"),
                                   (44, "152.50"), (54, "2"), (55, "AAPL"), (60, now())])
        er("CLIENT1", "8", {150: "5", 39: "0", 11: "S3-R1", 41: "S3", 38: D(150), 44: D("152.5"),
                            151: D(150)}, "replace up of S3")
        self.send("CLIENT1", "G", [(11, "S3-R2"), (41, "S3-R1"), (21, "1"), (38, "50"), (40, "2"),
                                   (44, "152.50"), (54, "2"), (55, "AAPL"), (60, now())])
        er("CLIENT1", "8", {150: "5", 39: "0", 11: "S3-R2", 41: "S3-R1", 38: D(50), 151: D(50)},
           "replace down of S3")
        # 6. Status request.
        self.send("CLIENT1", "H", [(11, "S3-R2"), (54, "2"), (55, "AAPL"), (790, "ST1")])
        er("CLIENT1", "8", {150: "I", 39: "0", 11: "S3-R2", 790: "ST1", 151: D(50)},
           "status of S3-R2")
        # 7. Cancel of an unknown order.
        self.send("CLIENT1", "F", [(11, "X-C"), (41, "NOSUCH"), (54, "2"), (55, "AAPL"),
                                   (38, "1"), (60, now())])
        er("CLIENT1", "9", {11: "X-C", 41: "NOSUCH", 434: "1", 102: "1"}, "cancel reject")
        # 8. A risk reject (price band).
        self.new_order("CLIENT2", "BAD", "1", "10", "999.00")
        er("CLIENT2", "8", {150: "8", 39: "8", 11: "BAD", 103: None, 58: None},
           "reject of BAD")
        # 9. Mass cancel: S3-R2 is CLIENT1's only working order.
        self.send("CLIENT1", "q", [(11, "MC1"), (530, "7"), (60, now())])
        er("CLIENT1", "8", {150: "4", 39: "4", 11: "S3-R2"}, "mass-cancelled S3-R2")
        er("CLIENT1", "r", {11: "MC1", 530: "7", 531: "7", 533: "1"}, "mass cancel report")

    def rest(self, name, cl, side, qty, px):
        self.new_order(name, cl, side, qty, px)
        self.expect(name, "8", {150: "0", 39: "0", 11: cl, 151: Decimal(qty)}, f"New for {cl}")

    def leave_a_book(self):
        """10. Two bid levels (one with two orders) and one offer stay."""
        self.rest("CLIENT2", "B3", "1", "100", "149.00")
        self.rest("CLIENT2", "B4", "1", "50", "149.50")
        self.rest("CLIENT2", "B5", "1", "30", "149.00")
        self.rest("CLIENT1", "S4", "2", "20", "151.00")

    def trade_after_unsubscribe(self):
        """11. CLIENT1 takes the best bid (B4) with nobody subscribed."""
        D = Decimal
        self.new_order("CLIENT1", "S5", "2", "50", "149.50")
        self.expect("CLIENT1", "8", {150: "0", 39: "0", 11: "S5"}, "New for S5")
        self.expect("CLIENT1", "8", {150: "F", 39: "2", 11: "S5", 32: D(50), 31: D("149.5")},
                    "fill of S5")
        self.expect("CLIENT2", "8", {150: "F", 39: "2", 11: "B4", 32: D(50), 31: D("149.5"),
                                     151: D(0)}, "fill of B4")

    def reports(self, names=ORDER_ENTRY, types=("8",)):
        return [m for name in names for m in self.got[name] if msg_type(m) in types]

    def expected_levels(self, depth):
        """The visible book as the two clients know it from their own
        ExecutionReports: {MDEntryType: [(price, size, orders)], best first}."""
        resting = {}
        for m in self.reports():
            oid = field(m, 37)
            leaves = Decimal(field(m, 151) or 0)
            if field(m, 39) in ("0", "1") and leaves > 0:
                px = field(m, 44) or resting[oid][1]
                resting[oid] = (field(m, 54), Decimal(px), leaves)
            else:
                resting.pop(oid, None)
        levels = {}
        for kind, side, best_first in (("0", "1", True), ("1", "2", False)):
            agg = {}
            for s_, px, leaves in resting.values():
                if s_ == side:
                    size, n = agg.get(px, (Decimal(0), 0))
                    agg[px] = (size + leaves, n + 1)
            rows = [(px, size, n) for px, (size, n) in sorted(agg.items(), reverse=best_first)]
            levels[kind] = rows[:depth] if depth else rows
        return levels

    # ---------------------------------------------------------------- market data

    def send_md_request(self, req_id, sub_type, depth, types, symbol="AAPL"):
        fields = [(262, req_id), (263, sub_type), (264, depth)]
        if sub_type == "1":
            fields.append((265, "1"))
        self.send("MDCLIENT", "V", fields, [
            (267, 269, [[(269, t)] for t in types]),
            (146, 55, [[(55, symbol)]]),
        ])

    def md_unknown_symbol(self):
        self.send_md_request("MDBAD", "1", 0, "01", symbol="NOSUCH")
        self.expect("MDCLIENT", "Y", {262: "MDBAD", 281: "0", 58: None},
                    "MarketDataRequestReject for an unknown symbol")
        self.md_stats["Y"] += 1

    def snapshot(self, req_id, depth, what, msg=None):
        if msg is None:
            msg = self.recv("MDCLIENT", what)
        self.check("MDCLIENT", msg, "W", {262: req_id, 55: "AAPL", 83: ABSENT}, what)
        book = MdBook(req_id, depth, self.failures)
        book.snapshot(msg)
        self.md_stats["W"] += 1
        self.md_stats["entries"] += len(md_entries(msg))
        return book

    def subscribe(self, req_id, depth, types):
        self.send_md_request(req_id, "1", depth, types)
        return self.snapshot(req_id, depth, f"snapshot for subscription {req_id}")

    def unsubscribe(self, book):
        """263=2 has no answer; a second one is rejected (unknown MDReqID),
        which also tells that the first was handled."""
        for _ in range(2):
            self.send_md_request(book.req_id, "2", book.depth, "01")
        self.expect("MDCLIENT", "Y", {262: book.req_id, 58: None},
                    f"reject of a second unsubscribe of {book.req_id}")
        self.md_stats["Y"] += 1

    def md_sync(self, req_id, books):
        """Asks for a snapshot (263=0) and applies every X that comes before
        it to `books` (by MDReqID); returns the snapshot."""
        self.send_md_request(req_id, "0", 0, "012")
        by_id = {b.req_id: b for b in books}
        while True:
            msg = self.recv("MDCLIENT", f"snapshot {req_id}")
            if msg_type(msg) != "X":
                return self.snapshot(req_id, 0, f"snapshot {req_id}", msg)
            self.md_stats["X"] += 1
            book = by_id.get(field(msg, 262))
            if book is None:
                self.failures.add(f"MDCLIENT: X for no live subscription: {show(msg)}")
                continue
            for e in md_entries(msg):
                self.md_stats["entries"] += 1
                self.md_stats["trades"] += e.get(269) == "2"
                book.incremental(e, msg)

    def compare_book(self, book, want, source):
        got = book.levels(book.depth)
        if got != want:
            self.failures.add(f"MDCLIENT: book of {book.req_id} is {fmt_levels(got)}, "
                              f"{source} says {fmt_levels(want)}")

    def compare_last_trade(self, book, want):
        if book.last_trade != want or want is None:
            self.failures.add(f"MDCLIENT: last trade of {book.req_id} {book.last_trade}, "
                              f"expected {want}")

    def compare_trades(self, book):
        """Each trade on the feed is two fills (both sides are our clients)."""
        fills = Counter((Decimal(field(m, 31)), Decimal(field(m, 32)))
                        for m in self.reports() if field(m, 150) == "F")
        trades = Counter(book.trades)
        if fills != trades + trades or not trades:
            self.failures.add(f"MDCLIENT: trades on the feed {sorted(trades.elements())}, "
                              f"fills of the clients {sorted(fills.elements())}")

    # ---------------------------------------------------------------- drop copy

    def drop_copy(self):
        """A copy of every ExecutionReport (797=Y) and OrderCancelReject (no
        797) of each client, with OnBehalfOfCompID = the client, in the
        client's order, same body."""
        originals = {name: self.reports((name,), ("8", "9")) for name in ORDER_ENTRY}
        copies = {name: [] for name in ORDER_ENTRY}
        for _ in range(sum(len(v) for v in originals.values())):
            m = self.recv("DROPCOPY", "a drop copy")
            src = field(m, 115)
            if src not in copies:
                self.failures.add(f"DROPCOPY: OnBehalfOfCompID {src} in {show(m)}")
                continue
            copies[src].append(m)
        self.copies = sum(len(v) for v in copies.values())
        for name in ORDER_ENTRY:
            want = [(msg_type(m), field(m, 17) or field(m, 11)) for m in originals[name]]
            got = [(msg_type(m), field(m, 17) or field(m, 11)) for m in copies[name]]
            if got != want:
                self.failures.add(f"DROPCOPY: copies of {name} {got}, {name} got {want}")
                continue
            for orig, copy in zip(originals[name], copies[name]):
                flag = "Y" if msg_type(orig) == "8" else None
                if field(copy, 797) != flag:
                    self.failures.add(f"DROPCOPY: 797={field(copy, 797)}, expected {flag} "
                                      f"in {show(copy)}")
                if body(orig) != body(copy):
                    self.failures.add(f"DROPCOPY: copy {show(copy)} differs from {show(orig)}")


def md_entries(msg):
    """The NoMDEntries (268) group of a W or X as dicts {tag: value}."""
    delim = 279 if msg_type(msg) == "X" else 269
    out = []
    for i in range(1, int(field(msg, 268) or 0) + 1):
        g = fix.Group(268, delim)
        msg.getGroup(i, g)
        out.append({t: g.getField(t) for t in (279, 269, 278, 55, 270, 271, 346, 290, 83)
                    if g.isSetField(t)})
    return out


class MdBook:
    """The book of one subscription rebuilt from its snapshot and increments:
    MDUpdateAction 0 inserts at MDEntryPositionNo, 1 changes and 2 deletes
    the level there (same price)."""

    def __init__(self, req_id, depth, failures):
        self.req_id = req_id
        self.depth = depth
        self.failures = failures
        self.sides = {"0": [], "1": []}
        self.trades = []
        self.last_trade = None

    def fail(self, text, msg):
        self.failures.add(f"MDCLIENT: {self.req_id}: {text} in {show(msg)}")

    def snapshot(self, msg):
        for e in md_entries(msg):
            kind = e.get(269)
            if kind in self.sides:
                side = self.sides[kind]
                if e.get(290) != str(len(side) + 1):
                    self.fail(f"MDEntryPositionNo {e.get(290)}, expected {len(side) + 1}", msg)
                side.append(level(e))
            elif kind == "2":
                self.last_trade = (Decimal(e[270]), Decimal(e[271]))
            else:
                self.fail(f"unexpected entry {e}", msg)
            if 83 in e:
                self.fail("RptSeq (83) with SendRptSeq=N", msg)

    def incremental(self, e, msg):
        kind, act = e.get(269), e.get(279)
        if 83 in e or e.get(55) != "AAPL":
            self.fail(f"entry {e}: RptSeq with SendRptSeq=N, or not AAPL", msg)
        if kind == "2":
            if act != "0" or 278 not in e:
                self.fail(f"trade entry {e}: expected 279=0 and an MDEntryID", msg)
            self.trades.append((Decimal(e[270]), Decimal(e[271])))
            self.last_trade = self.trades[-1]
            return
        side = self.sides.get(kind)
        if side is None or 290 not in e:
            self.fail(f"unexpected entry {e}", msg)
            return
        i = int(e[290]) - 1
        px = Decimal(e[270])
        if act == "0" and 0 <= i <= len(side):
            side.insert(i, level(e))
        elif act in ("1", "2") and 0 <= i < len(side) and side[i][0] == px:
            if act == "1":
                side[i] = level(e)
            else:
                del side[i]
        else:
            self.fail(f"entry {e} does not fit the book {fmt_levels(self.sides)}", msg)

    def levels(self, depth):
        return {k: (v[:depth] if depth else list(v)) for k, v in self.sides.items()}


def level(e):
    return (Decimal(e[270]), Decimal(e[271]), int(e[346]))


def fmt_levels(levels):
    return "; ".join(
        f"{'bids' if k == '0' else 'offers'} "
        + (", ".join(f"{n}x{size}@{px}" for px, size, n in v) or "none")
        for k, v in sorted(levels.items())
    )


def body(msg):
    """Body fields in order, without CopyMsgIndicator (797)."""
    out = []
    for f in msg.toString().split(SOH):
        if not f:
            continue
        tag, _, value = f.partition("=")
        t = int(tag)
        if not (fix.Message.isHeaderField(t) or fix.Message.isTrailerField(t) or t == 797):
            out.append((t, value))
    return out


class Abort(Exception):
    pass


def now():
    t = time.time()
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = ap.parse_args()

    xml = quickfix_fix44_xml()
    if not xml:
        print("quickfix_client.py: QuickFIX's FIX44.xml not found; run .ci/install-quickfix",
              file=sys.stderr)
        return 3

    work = tempfile.mkdtemp(prefix="qf-interop-")
    cfg = os.path.join(work, "client.cfg")
    with open(cfg, "w") as f:
        f.write(f"""[DEFAULT]
ConnectionType=initiator
BeginString=FIX.4.4
TargetCompID=FIXGW
SocketConnectHost={args.host}
SocketConnectPort={args.port}
HeartBtInt=30
ReconnectInterval=1
StartTime=00:00:00
EndTime=00:00:00
UseDataDictionary=Y
DataDictionary={xml}
ValidateIncomingMessage=Y
ValidateFieldsOutOfOrder=Y
ValidateFieldsHaveValues=Y
ValidateUserDefinedFields=Y
AllowUnknownMsgFields=N
CheckLatency=Y
MaxLatency=120
FileStorePath={work}/store
FileLogPath={work}/log

[SESSION]
SenderCompID=CLIENT1

[SESSION]
SenderCompID=CLIENT2

[SESSION]
SenderCompID=MDCLIENT

[SESSION]
SenderCompID=DROPCOPY
""")

    failures = Failures()
    app = App(failures)
    settings = fix.SessionSettings(cfg)
    initiator = fix.SocketInitiator(
        app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings)
    )
    sessions = {}
    for sid in settings.getSessions():
        sessions[sid.getSenderCompID().getValue()] = sid
    print(f"quickfix {getattr(fix, '__version__', '')} dictionary {xml}", flush=True)
    initiator.start()
    try:
        deadline = time.time() + args.timeout
        for name in SESSIONS:
            if not app.logged_on[name].wait(max(0.0, deadline - time.time())):
                failures.add(f"{name}: no Logon within {args.timeout}s")
                raise Abort()
        print(f"{len(SESSIONS)} sessions logged on", flush=True)
        Scenario(app, sessions, failures, args.timeout).run()
    except Abort:
        pass
    finally:
        app.expect_logout = True
        initiator.stop()

    # Validation problems QuickFIX only logs (anything it rejected or dropped).
    for path in sorted(glob.glob(os.path.join(work, "log", "*.event.log"))):
        with open(path, errors="replace") as f:
            for line in f:
                low = line.lower()
                if any(w in low for w in ("reject", "invalid", "not defined", "incorrect",
                                          "required tag missing", "out of order",
                                          "too low", "too high", "error")):
                    failures.add(f"{os.path.basename(path)}: {line.strip()}")

    if failures.items:
        print(f"\n{len(failures.items)} failure(s); QuickFIX logs in {work}", file=sys.stderr)
        for path in sorted(glob.glob(os.path.join(work, "log", "*messages*.log"))):
            print(f"--- {path}", file=sys.stderr)
            with open(path, errors="replace") as f:
                sys.stderr.write(f.read().replace(SOH, "|"))
        return 1
    print("interop OK: every ExecutionReport, market data message and drop copy as expected, "
          "no rejects", flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
