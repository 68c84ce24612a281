"""Easel's models: the catalogue (AIModel), generations and their images, share links, limits
and the ledger.

State changes live with the model they change: every status change is a Generation method
(generation.py), the ledger's charge and refund are UsageEntry.objects methods (usage.py).
"""

from generator.models.catalogue import AIModel, AIModelQuerySet
from generator.models.exports import Export, ExportRefused
from generator.models.generation import Generation, GenerationQuerySet, new_generation_id
from generator.models.images import OutputImage, output_upload_to
from generator.models.moderation import BlockedTerm, FlaggedPrompt
from generator.models.retention import RetentionPolicy
from generator.models.sharing import ShareLink, ShareLinkQuerySet
from generator.models.usage import UsageEntry, UsageEntryQuerySet, UserLimit

__all__ = [
    "AIModel",
    "AIModelQuerySet",
    "BlockedTerm",
    "Export",
    "ExportRefused",
    "FlaggedPrompt",
    "Generation",
    "GenerationQuerySet",
    "OutputImage",
    "ShareLink",
    "ShareLinkQuerySet",
    "RetentionPolicy",
    "UsageEntry",
    "UsageEntryQuerySet",
    "UserLimit",
    "new_generation_id",
    "output_upload_to",
]
