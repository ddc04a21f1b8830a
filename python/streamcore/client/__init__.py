"""The streamcore client: producer, consumer and admin client.

The classes here block (each runs its asyncio core on a shared background
event-loop thread); ``streamcore.aio`` has the asyncio classes.
"""

from streamcore.client.admin import GroupDescription, GroupMember, NewTopic
from streamcore.client.blocking import AdminClient, Consumer, Producer
from streamcore.client.errors import BufferFullError
from streamcore.client.types import (
    BatchMetadata,
    ConsumerRecord,
    OffsetAndMetadata,
    PartitionColumns,
    RecordMetadata,
    TopicPartition,
)

__all__ = [
    "AdminClient",
    "BatchMetadata",
    "BufferFullError",
    "Consumer",
    "ConsumerRecord",
    "GroupDescription",
    "GroupMember",
    "NewTopic",
    "OffsetAndMetadata",
    "PartitionColumns",
    "Producer",
    "RecordMetadata",
    "TopicPartition",
]
