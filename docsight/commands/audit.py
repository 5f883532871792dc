"""``docsight audit``: is every received document accounted for, exactly once?"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from docsight.audit import DEFAULT_GRACE_SECONDS


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "audit", help="check that every received document ended in exactly one outcome",
        description="Read document-received, document-enriched and document-failed from the broker and report "
                    "documents received, enriched, failed, in progress, lost (no outcome after the grace "
                    "period), emitted twice with different content, and duplicate ids rejected. Exits 1 when "
                    "anything is lost or doubled with different content.\n\nexample:\n"
                    "  DOCSIGHT_BROKER_URL=kafka://127.0.0.1:9092 docsight audit --grace-seconds 300",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker-url", default=os.environ.get("DOCSIGHT_BROKER_URL"),
                        help="Kafka bootstrap servers (default: $DOCSIGHT_BROKER_URL)")
    parser.add_argument("--grace-seconds", type=float, default=DEFAULT_GRACE_SECONDS,
                        help=f"a document without an outcome is lost after this long "
                             f"(default: {DEFAULT_GRACE_SECONDS:g})")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--show", type=int, default=10, help="document ids listed per problem (default: 10)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from aiokafka.errors import KafkaConnectionError

    from docsight.audit import audit_broker

    if not args.broker_url:
        raise ConnectionError("no broker: set DOCSIGHT_BROKER_URL or pass --broker-url")
    try:
        report = asyncio.run(audit_broker(args.broker_url, grace_seconds=args.grace_seconds))
    except KafkaConnectionError as error:
        raise ConnectionError(f"cannot reach the broker at {args.broker_url}: {error}") from None
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render(show=args.show))
    return 0 if report.ok else 1
