"""The streamcore client: producer, consumer and admin client.

The classes here block (each runs its asyncio core on a shared background
event-loop thread); ``streamcore.aio`` has the asyncio classes.
"""

from streamcore.client.admin import GroupDescription, GroupMember, NewTopic
from streamcore.client.blocking import AdminClient, Consumer, Producer
from streamcore.client.errors import (
    AbortableTransactionError,
    BufferFullError,
    FatalTransactionError,
    TransactionAbortedError,
    TransactionError,
    TransactionStateError,
)
from streamcore.client.transactions import TransactionState
from streamcore.client.types import (
    BatchMetadata,
    ConsumerGroupMetadata,
    ConsumerRecord,
    OffsetAndMetadata,
    PartitionColumns,
    RecordMetadata,
    TopicPartition,
)

__all__ = [
    "AbortableTransactionError",
    "AdminClient",
    "BatchMetadata",
    "BufferFullError",
    "Consumer",
    "ConsumerGroupMetadata",
    "ConsumerRecord",
    "FatalTransactionError",
    "GroupDescription",
    "GroupMember",
    "NewTopic",
    "OffsetAndMetadata",
    "PartitionColumns",
    "Producer",
    "RecordMetadata",
    "TopicPartition",
    "TransactionAbortedError",
    "TransactionError",
    "TransactionState",
    "TransactionStateError",
]
