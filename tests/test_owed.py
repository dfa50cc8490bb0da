"""What a session is owed (ReplyQueue) and what a kernel keeps for sessions that are away
(AwayReplies): every request counted, by its size too, and a bound per kernel."""

from __future__ import annotations

from typing import Any

from ipytwist.kernel.outputlog import MESSAGE_OVERHEAD
from ipytwist.web.away import AwayReplies
from ipytwist.web.outbox import MAX_OWED_BYTES, MAX_OWED_MESSAGES, OwedTotal, ReplyQueue
from ipytwist.wire import new_message

MiB = 1 << 20


def req(msg_id: str, msg_type: str = "execute_request") -> dict[str, Any]:
    return {"channel": "shell", "header": {"msg_id": msg_id, "msg_type": msg_type}}


def reply_to(msg_id: str, text: str = "") -> dict[str, Any]:
    msg = new_message("execute_reply", {"status": "ok", "text": text}, "kernel")
    msg["parent_header"] = {"msg_id": msg_id}
    return msg


def test_every_request_counts_even_when_its_msg_id_repeats() -> None:
    """Issue 16: a repeated msg_id counted once, so 4,000 requests with one id were all
    read (against 1,117 with unique ids).  Each counts until a reply answers it."""
    q = ReplyQueue()
    for _ in range(MAX_OWED_MESSAGES - 1):
        q.request_sent(req("same"))
    assert q.owed == MAX_OWED_MESSAGES - 1 and not q.over_bound()
    q.request_sent(req("same"))
    assert q.over_bound()
    for _ in range(MAX_OWED_MESSAGES // 2 + 1):
        q.add(0, "shell", reply_to("same"))
        q.pop()
    assert q.owed == MAX_OWED_MESSAGES // 2 - 1 and q.below_low_water()


def test_request_bytes_count_until_answered() -> None:
    """Issue 16: 300 execute_requests of 1 MB queued behind a running cell cost +305 MB,
    the bound counting their number only.  Their bytes count now: 16 of 1 MiB reach
    the 16 MiB bound, and each reply gives its request's bytes back."""
    q = ReplyQueue()
    for i in range(MAX_OWED_BYTES // MiB):
        assert not q.over_bound()
        q.request_sent(req(f"r{i}"), MiB)
    assert q.owed == 16 and q.request_bytes == MAX_OWED_BYTES and q.over_bound()
    for i in range(8):
        q.add(0, "shell", reply_to(f"r{i}"))
        q.pop()
    assert q.request_bytes == MAX_OWED_BYTES // 2 and q.below_low_water()


def test_of_requests_sharing_a_msg_id_the_smallest_is_answered_first() -> None:
    """A reply cannot say which of two requests with one msg_id it answers: the bound
    takes the smaller as answered, so it never counts less than is held."""
    q = ReplyQueue()
    q.request_sent(req("x"), 10 * MiB)
    q.request_sent(req("x", "kernel_info_request"), 100)
    q.add(0, "shell", reply_to("x"))
    assert q.request_bytes == 10 * MiB
    q.add(0, "shell", reply_to("x"))
    assert q.request_bytes == 0 and q.owed == 2  # the two replies, until written
    q.add(0, "shell", reply_to("x"))  # a reply to nothing owed: no negative counts
    assert q.request_bytes == 0 and q.owed == 3


def test_what_is_not_a_request_is_not_owed_and_a_comm_message_until_handled() -> None:
    q = ReplyQueue()
    q.request_sent({"channel": "stdin", "header": {"msg_id": "i", "msg_type": "input_reply"}}, 5)
    q.request_sent({"channel": "shell", "header": {"msg_id": "s", "msg_type": "status"}}, 5)
    assert q.owed == 0 and q.request_bytes == 0
    comm = {"channel": "shell", "header": {"msg_id": "c", "msg_type": "comm_msg"}}
    q.request_sent(comm, 5)  # it waits in the kernel's queue: counted until handled
    assert q.owed == 1 and q.request_bytes == 5
    q.handled(comm)
    assert q.owed == 0 and q.request_bytes == 0


def test_cost_and_drop() -> None:
    """A queue's cost counts output bytes and a fixed overhead per reply; dropping its
    replies keeps its requests counted."""
    q = ReplyQueue()
    q.request_sent(req("later"), 50)
    q.add(0, "shell", reply_to("a", "x" * 100))
    q.add(0, "shell", reply_to("b", "y" * 200))
    assert q.cost == 100 + 200 + 2 * len("ok") + 2 * MESSAGE_OVERHEAD
    assert q.drop() == 2
    assert q.cost == 0 and not q and q.owed == 1 and q.request_bytes == 50


def away_queue(n: int, text: str = "") -> ReplyQueue:
    q = ReplyQueue()
    for i in range(n):
        q.add(0, "shell", reply_to(f"m{i}", text))
    return q


def test_a_kernel_keeps_at_most_its_bound_for_sessions_away() -> None:
    """Past the bound, the replies of the session that kept some for longest go, and
    when it comes back its first message says how many."""
    per = 2 + MESSAGE_OVERHEAD  # one reply: "ok" and the overhead
    away = AwayReplies(OwedTotal(), max_bytes=10 * per)
    first, second = away_queue(6), away_queue(4)
    away.left(first)
    away.left(second)
    assert away.nbytes == 10 * per and first.cost and second.cost
    third = away_queue(1)
    away.left(third)
    assert first.cost == 0 and first.dropped == 6 and away.nbytes == 5 * per
    second.add(0, "shell", reply_to("more"))
    away.grew(second)
    assert away.nbytes == 6 * per and second.cost == 5 * per

    away.back(first, "kernel-session")
    assert first.dropped == 0
    notice = first.pop()
    assert notice.channel == "iopub" and notice.after_seq == -1
    assert notice.msg["content"]["name"] == "stderr"
    assert notice.msg["content"]["text"].startswith("[ipytwist] 6 replies dropped: this client")
    assert notice.msg["header"]["session"] == "kernel-session"

    away.back(second, "kernel-session")
    assert second.peek() is not None and second.peek().channel == "shell"  # none dropped
    away.forget(third)
    assert away.nbytes == 0


def test_the_bound_holds_whatever_the_replies_weigh() -> None:
    """One away session with a reply larger than the bound keeps none of it."""
    away = AwayReplies(OwedTotal(), max_bytes=MiB)
    big = away_queue(1, "z" * (2 * MiB))
    away.left(big)
    assert away.nbytes == 0 and big.cost == 0 and big.dropped == 1


def test_a_kernel_total_reached_holds_back_every_session_owed_anything() -> None:
    """Sessions count in their kernel's total while connected.  Once it reaches its
    bound, a session owed anything is over its bound too (it may go on one request at
    a time: owed nothing, it is below its low water), until the total is half again;
    then ``on_low`` is called, once."""
    lows: list[int] = []
    total = OwedTotal(lambda: lows.append(total.messages), max_messages=10, max_bytes=MiB)
    busy, polite = ReplyQueue(), ReplyQueue()
    busy.count_in(total)
    polite.count_in(total)
    for i in range(10):
        assert not busy.over_bound()
        busy.request_sent(req(f"b{i}"))
    assert total.high and busy.over_bound() and not polite.over_bound()
    polite.request_sent(req("p"))
    assert polite.over_bound() and not polite.below_low_water()
    polite.add(0, "shell", reply_to("p"))
    polite.pop()
    assert polite.below_low_water() and lows == []
    for i in range(5):
        busy.add(0, "shell", reply_to(f"b{i}"))
        busy.pop()
    assert lows == [5] and not total.high and not polite.over_bound()


def test_a_session_away_does_not_count_in_its_kernel_total() -> None:
    total = OwedTotal(max_messages=10, max_bytes=MiB)
    away = AwayReplies(total)
    q = ReplyQueue()
    away.back(q, "kernel-session")  # connected
    q.request_sent(req("a"), 100)
    q.add(0, "shell", reply_to("x"))
    assert (total.messages, total.nbytes) == (2, 100 + 2)
    away.left(q)
    assert (total.messages, total.nbytes) == (0, 0)
    q.add(0, "shell", reply_to("a"))  # answered while away: not counted
    assert total.messages == 0 and q.owed == 2
    away.back(q, "kernel-session")
    assert total.messages == 2


def test_a_kernel_keeps_at_most_so_many_replies_for_sessions_away() -> None:
    """The bound by number holds too (every reply kept is objects the collector's full
    passes look at): past it, the session that kept some longest loses them all."""
    away = AwayReplies(OwedTotal(), max_messages=10)
    first, second = away_queue(6), away_queue(4)
    away.left(first)
    away.left(second)
    assert away.messages == 10 and first.dropped == 0
    second.add(0, "shell", reply_to("more"))
    away.grew(second)
    assert first.dropped == 6 and away.messages == 5 and len(second) == 5
    away.back(first, "kernel-session")
    notice = first.pop().msg["content"]["text"]
    assert notice.startswith("[ipytwist] 6 replies dropped") and "more than 10 replies" in notice
    away.forget(second)
    assert away.messages == 0 and away.nbytes == 0
