"""``docsight control``: change the cluster's API budget while it runs, no restart."""

from __future__ import annotations

import argparse
import asyncio
import json
import time


def register(subcommands) -> None:
    parser = subcommands.add_parser(
        "control", help="change the cluster budget at runtime (gradual rollout)",
        description="Publish a new cluster budget; every worker applies its share within seconds. Fields left "
                    "out keep their current value. Or resume pictures held by VISION_ON_API_UNAVAILABLE=wait "
                    "once their cause is fixed (the key re-enabled, the model served, the API's daily quota "
                    "raised; a new GEMINI_API_KEY needs a restart). Needs DOCSIGHT_BROKER_URL (the running "
                    "cluster's broker).\n\n"
                    "examples:\n  docsight control budget --rpm 500 --tpm 1000000 --rpd 10000 --daily-usd 25\n"
                    "  docsight control resume",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    budget = actions.add_parser("budget", help="set requests/min, tokens/min, requests/day, daily USD cap")
    budget.add_argument("--rpm", type=float, help="requests per minute for the whole cluster")
    budget.add_argument("--tpm", type=float, help="input tokens per minute for the whole cluster")
    budget.add_argument("--rpd", type=int, help="requests per day for the whole cluster")
    budget.add_argument("--daily-usd", type=float, help="daily spending cap in USD")
    actions.add_parser("resume", help="held pictures try again (after fixing the key, the model or the quota)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from docsight.config import get_settings

    settings = get_settings()
    if not settings.broker_url:
        raise ConnectionError("set DOCSIGHT_BROKER_URL to the running cluster's broker")
    if args.action == "resume":
        asyncio.run(_publish(settings.broker_url, f"{settings.app_id}-budget-control",
                             {"resume": True, "set_at": time.time()}))
        print("resume sent: held pictures try again within a few seconds")
        return 0
    message = {"requests_per_minute": args.rpm, "tokens_per_minute": args.tpm, "requests_per_day": args.rpd,
               "daily_budget_usd": args.daily_usd, "set_at": time.time()}
    for name, value in message.items():
        if isinstance(value, (int, float)) and value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    asyncio.run(_publish(settings.broker_url, f"{settings.app_id}-budget-control", message))
    chosen = {key: value for key, value in message.items() if value is not None and key != "set_at"}
    print(f"cluster budget sent: {chosen}; workers apply it within a few seconds")
    return 0


async def _publish(broker_url: str, topic: str, message: dict) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError

    from docsight.broker import kafka_security
    from docsight.client import bootstrap_servers

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(broker_url), acks="all", **kafka_security())
    try:
        await _ensure_topic(broker_url, topic)
        await producer.start()
    except KafkaConnectionError:
        raise ConnectionError(f"cannot reach the broker at {broker_url} (DOCSIGHT_BROKER_URL)") from None
    try:
        await producer.send_and_wait(topic, json.dumps(message).encode(), key=b"budget")
    finally:
        await producer.stop()


async def _ensure_topic(broker_url: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    from docsight.broker import kafka_security
    from docsight.client import bootstrap_servers

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker_url), **kafka_security())
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            try:
                await admin.create_topics([NewTopic(topic, 1, 1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
