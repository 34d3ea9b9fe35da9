#!/usr/bin/python3
"""Rebuild one table in memory from Synchro Bridge's change sets, with nothing but the stream.

    rebuild_table.py --amqp URL --table SCHEMA.TABLE --queue NAME [--source NAME]

Declares the queue NAME, binds it to the topic exchange synchro.change-set.v2 with the routing key
SOURCE.SCHEMA.TABLE (SOURCE defaults to *: every bridge that publishes this table) and prints
`ready` once bound. It then applies change sets until it reads a line `stop` on stdin (or stdin
ends), applies what is still queued, and prints the table: one JSON object per line,
{"recordId": ..., "row": {column: value}}, sorted by recordId, values as PostgreSQL's text output
(null for SQL NULL). A summary goes to stderr.

Exit codes: 0 done; 1 a message it cannot apply; 2 RabbitMQ unreachable or refusing; 3 pika missing.

The rules (see examples/python/README.md): insert and read put the row; update takes the row
it had (under oldRecordId when the key changed), keeps each value marked {"unsent": ...} and
takes the others; delete removes it; truncate empties the table. The bridge delivers at least
once, so each table remembers the position (commit LSN, change index) of the last change applied
and skips any change at or before it.
"""

import argparse
import json
import sys
import threading

try:
    import pika
except ImportError:
    print("rebuild_table: the Python module pika is missing: apt-get install python3-pika "
          "(scripts/test.sh installs it), and run this with Debian's /usr/bin/python3", file=sys.stderr)
    sys.exit(3)

EXCHANGE = "synchro.change-set.v2"


class BadMessage(Exception):
    """A change set this subscriber cannot apply: stop rather than guess."""


def lsn(text):
    """A PostgreSQL LSN `X/Y` (hex) as an integer; never compare LSNs as strings."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def is_unsent(value):
    """{"unsent": reason}: PostgreSQL did not send this value. Not NULL, not a value at all."""
    if isinstance(value, dict) and "unsent" in value:
        return True
    if value is None or isinstance(value, str):
        return False
    raise BadMessage(f"a column value must be a string, null or {{\"unsent\": ...}}, not {value!r}")


class Table:
    """One table (source.schema.table) as its change sets describe it."""

    def __init__(self):
        self.rows = {}          # recordId -> {column: text or None}
        self.position = None    # (commit LSN, change index) of the last change applied

    def apply(self, columns, change):
        """Applies one change; False when it is a replay of one applied before."""
        position = (lsn(change["commitLsn"]), change["changeIndex"])
        if self.position is not None and position <= self.position:
            return False
        operation = change["operation"]
        if operation in ("insert", "read"):
            new_row = row_of(columns, change["newRow"])
            unsent = [c for c, v in new_row.items() if is_unsent(v)]
            if unsent:
                raise BadMessage(f"{operation} of record {change['recordId']} leaves {unsent} unsent")
            self.rows[change["recordId"]] = new_row
        elif operation == "update":
            record_id = change["recordId"]
            before = self.rows.pop(change.get("oldRecordId", record_id), {})
            merged = {}
            for column, value in row_of(columns, change["newRow"]).items():
                if is_unsent(value):
                    if column not in before:
                        raise BadMessage(
                            f"update of record {record_id} leaves {column} unsent and no earlier value is known "
                            "(subscribe before the rows are written, or have the bridge read them: snapshot or backfill)")
                    value = before[column]
                merged[column] = value
            self.rows[record_id] = merged
        elif operation == "delete":
            self.rows.pop(change["recordId"], None)
        elif operation == "truncate":
            self.rows.clear()
        else:
            raise BadMessage(f"unknown operation {operation!r}")
        self.position = position
        return True


def row_of(columns, values):
    if len(values) != len(columns):
        raise BadMessage(f"a row of {len(values)} values for {len(columns)} columns")
    return dict(zip(columns, values))


class Rebuild:
    """Every table the queue receives, by source.schema.table, and counts for the summary."""

    def __init__(self):
        self.tables = {}
        self.applied = self.skipped = 0

    def apply_message(self, body):
        try:
            change_set = json.loads(body)
            name = f"{change_set['source']}.{change_set['schema']}.{change_set['table']}"
            columns = [column["name"] for column in change_set["columns"]]
            table = self.tables.setdefault(name, Table())
            for change in change_set["changes"]:
                if table.apply(columns, change):
                    self.applied += 1
                else:
                    self.skipped += 1
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise BadMessage(f"{type(e).__name__}: {e}") from e

    def table(self):
        """The one table received (empty if none); rows of several sources are not one table."""
        if len(self.tables) > 1:
            raise BadMessage(f"change sets of several sources arrived ({', '.join(sorted(self.tables))}): name one with --source")
        return next(iter(self.tables.values()), Table())


def watch_stdin(stop):
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stop.set()


def consume(channel, queue, rebuild, stop):
    """Applies change sets until stop is set and the queue is empty, acknowledging each once applied."""
    for method, _properties, body in channel.consume(queue, inactivity_timeout=0.2):
        if method is None:
            # Idle: every delivery so far is applied and acknowledged, so once stop is set an
            # empty queue means nothing is left.
            if stop.is_set() and channel.queue_declare(queue, passive=True).method.message_count == 0:
                break
            continue
        try:
            rebuild.apply_message(body)
        except BadMessage as e:
            raise BadMessage(f"change set routed {method.routing_key}: {e}") from e
        channel.basic_ack(method.delivery_tag)
    channel.cancel()


def run(args):
    schema, _, table = args.table.partition(".")
    routing_key = f"{args.source}.{schema}.{table}"
    connection = pika.BlockingConnection(args.amqp)
    try:
        channel = connection.channel()
        # Declared as the bridge declares it, so the binding works before the bridge ever ran.
        channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
        # A queue for this run only. In production: a durable quorum queue
        # (durable=True, arguments={"x-queue-type": "quorum"}) so changes wait while the subscriber
        # is down, and the rows and each table's position stored together, in one transaction.
        channel.queue_declare(args.queue, exclusive=True, auto_delete=True)
        channel.queue_bind(args.queue, EXCHANGE, routing_key=routing_key)
        # One table's change sets must be applied in order: one consumer, acknowledged after applying.
        channel.basic_qos(prefetch_count=50)
        print("ready", flush=True)

        stop = threading.Event()
        threading.Thread(target=watch_stdin, args=(stop,), daemon=True).start()
        rebuild = Rebuild()
        consume(channel, args.queue, rebuild, stop)
    finally:
        if connection.is_open:
            connection.close()

    rows = rebuild.table().rows
    for record_id in sorted(rows):
        print(json.dumps({"recordId": record_id, "row": rows[record_id]}))
    print(f"rebuild_table: {routing_key}: {len(rows)} rows from {rebuild.applied} changes "
          f"({rebuild.skipped} replays skipped)", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description="Rebuild one table in memory from Synchro Bridge's change sets.")
    parser.add_argument("--amqp", required=True, help="RabbitMQ URL, e.g. amqp://guest:guest@localhost:5672/%%2F")
    parser.add_argument("--table", required=True, help="schema.table")
    parser.add_argument("--queue", required=True, help="the queue to declare and bind")
    parser.add_argument("--source", default="*", help="the bridge's Synchro:Source (default *: any)")
    args = parser.parse_args()
    if "." not in args.table:
        parser.error("--table must be schema.table")
    try:
        args.amqp = pika.URLParameters(args.amqp)
    except ValueError as e:
        parser.error(f"--amqp: {e}")
    try:
        run(args)
    except BadMessage as e:
        print(f"rebuild_table: cannot apply: {e}", file=sys.stderr)
        return 1
    except pika.exceptions.AMQPError as e:
        where = args.amqp
        print(f"rebuild_table: RabbitMQ at {where.host}:{where.port}, virtual host {where.virtual_host}: {e!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
