#!/usr/bin/env python3
"""Interop check: a real QuickFIX engine (the `quickfix` Python binding) as
the client of a running fixgw.

Two initiator sessions in one settings file, CLIENT1 and CLIENT2, with
UseDataDictionary=Y pointing at QuickFIX's OWN FIX44.xml, so QuickFIX
validates every message it receives. The script places a resting order,
fills it from the other session (partial, then full), cancels, replaces up
and down, asks for status, cancels an unknown order, mass-cancels and gets a
risk reject, checking every ExecutionReport a client would check.

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

    def send(self, name, mtype, fields):
        msg = fix.Message()
        msg.getHeader().setField(fix.MsgType(mtype))
        for tag, value in fields:
            msg.setField(fix.StringField(tag, str(value)))
        if not fix.Session.sendToTarget(msg, self.sessions[name]):
            self.failures.add(f"{name}: could not send {show(msg)}")

    def recv(self, name, what):
        try:
            return self.app.inbox[name].get(timeout=self.timeout)
        except queue.Empty:
            self.failures.add(f"{name}: no reply within {self.timeout}s (expected {what})")
            raise Abort()

    def expect(self, name, mtype, checks, what):
        """Next application message of `name`: type `mtype` and the fields in
        `checks` ({tag: value}; values compared as decimals when numeric-looking
        in the expectation, tag -> None means 'must be present')."""
        msg = self.recv(name, what)
        problems = []
        if msg_type(msg) != mtype:
            problems.append(f"35={msg_type(msg)}, expected 35={mtype}")
        for tag, want in checks.items():
            got = field(msg, tag)
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
        self.nothing_more("CLIENT1")
        self.nothing_more("CLIENT2")


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
        for name in ("CLIENT1", "CLIENT2"):
            if not app.logged_on[name].wait(max(0.0, deadline - time.time())):
                failures.add(f"{name}: no Logon within {args.timeout}s")
                raise Abort()
        print("both sessions logged on", flush=True)
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
    print("interop OK: every ExecutionReport as expected, no rejects", flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
