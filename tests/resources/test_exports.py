"""Every public name of api-contract section 11 resolves, from the documented modules."""

from __future__ import annotations

import dataclasses

import roost
import roost.resources.roosts as roosts_module

SPEC_ALL = [
    "CHUNK_SIZE_BYTES",
    "DEFAULT_API_URL",
    "DEFAULT_REPLAY_TOLERANCE_SECONDS",
    "DEFAULT_ROOST_VERSION",
    "SDK_VERSION",
    "Account",
    "AccountApiKeys",
    "AccountKeyContext",
    "AddRole",
    "ApiKeyRecord",
    "ApiKeyScope",
    "ApiResponse",
    "ApiVersionResponse",
    "Chat",
    "ChunkDescriptor",
    "ChunkProgressEvent",
    "ChunkedFileEntry",
    "Chunks",
    "CommandStatus",
    "CommandType",
    "ControlVerb",
    "ConversationSummary",
    "DeployOptions",
    "DeployResult",
    "Deployments",
    "DiscoverProgress",
    "Environment",
    "HashProgress",
    "Installer",
    "InstallerDeploymentDetail",
    "InstallerDeploymentSummary",
    "InstallerDeploymentTarget",
    "InstallerDeployments",
    "InstallerVersion",
    "Keys",
    "MachineDeployment",
    "MachineDetail",
    "MachineSummary",
    "Machines",
    "Member",
    "Members",
    "PerSiteRole",
    "PlatformUser",
    "ProcessRecord",
    "Processes",
    "PromoteRole",
    "PushOptions",
    "PushResult",
    "QuotaHistoryDay",
    "QuotaSnapshot",
    "Quotas",
    "RetryPolicy",
    "RollbackOptions",
    "RollbackResult",
    "Roost",
    "RoostApiError",
    "RoostClient",
    "RoostDetail",
    "RoostSummary",
    "Roosts",
    "ScheduleMode",
    "Site",
    "Sites",
    "Users",
    "VerifyReason",
    "VerifySignatureResult",
    "VersionSummary",
    "Versions",
    "WebhookSubscription",
    "Webhooks",
    "WhoamiResponse",
    "__version__",
    "is_signature_valid",
    "sign_body",
    "verify_signature",
]

ROOSTS_MODULE_EXTRA = [
    "PushProgressCheckMissing",
    "PushProgressEvent",
    "PushProgressPublish",
    "PushProgressUpload",
    "PushStats",
]


def test_spec_names_are_exported() -> None:
    missing = [name for name in SPEC_ALL if name not in roost.__all__ or not hasattr(roost, name)]
    assert missing == []
    assert sorted(set(roost.__all__)) == sorted(roost.__all__), "duplicates in __all__"
    assert all(hasattr(roost, name) for name in roost.__all__)


def test_roosts_module_extras() -> None:
    for name in ROOSTS_MODULE_EXTRA:
        assert hasattr(roosts_module, name)


def test_constants() -> None:
    assert roost.CHUNK_SIZE_BYTES == 4194304
    assert roost.SDK_VERSION == roost.__version__ == "1.0.0rc0"
    assert roost.DEFAULT_REPLAY_TOLERANCE_SECONDS == 300


def test_typed_results_are_slotted_dataclasses() -> None:
    for name in (
        "RoostSummary",
        "RoostDetail",
        "VersionSummary",
        "RollbackOptions",
        "RollbackResult",
        "DeployOptions",
        "DeployResult",
        "WebhookSubscription",
        "Site",
        "MachineSummary",
        "MachineDetail",
        "MachineDeployment",
        "QuotaSnapshot",
        "QuotaHistoryDay",
        "ApiKeyRecord",
        "ApiKeyScope",
        "WhoamiResponse",
        "AccountKeyContext",
        "ApiVersionResponse",
        "InstallerVersion",
        "InstallerDeploymentSummary",
        "InstallerDeploymentDetail",
        "InstallerDeploymentTarget",
        "ProcessRecord",
        "ConversationSummary",
        "PlatformUser",
        "Member",
    ):
        cls = getattr(roost, name)
        assert dataclasses.is_dataclass(cls), name
        assert "__slots__" in vars(cls), name
