"""Synthetic tables for tests: ids with known overlaps."""


def provider_csv(ids: list[str]) -> bytes:
    lines = ["customer_id,region,score"]
    lines += [f"{value},{'north' if n % 2 else 'south'},{n % 7}" for n, value in enumerate(ids)]
    return ("\n".join(lines) + "\n").encode()


def consumer_csv(ids: list[str]) -> bytes:
    return ("customer_id\n" + "\n".join(ids) + "\n").encode()


def overlapping_ids(*, provider: int, consumer: int, overlap: int) -> tuple[list[str], list[str]]:
    provider_ids = [f"P{n:05d}" for n in range(provider)]
    consumer_ids = provider_ids[:overlap] + [f"X{n:05d}" for n in range(consumer - overlap)]
    return provider_ids, consumer_ids
