"""Batch mode: an Indexed Job that scores the input in shards, on a schedule (a CronJob)
or once."""

from __future__ import annotations

from typing import cast

from modelplane.contract import Command, Env
from modelplane.operator.manifest import ModelDeployment
from modelplane.operator.objects import Object
from modelplane.operator.render.common import (
    MODEL_VERSION_LABEL,
    RenderSettings,
    content_hash,
    selector_labels,
)
from modelplane.operator.render.pod import env_var, model_env, pod_template
from modelplane.operator.spec import Batch, ResolvedModel

ROLE = "batch"


def render(deployment: ModelDeployment, model: ResolvedModel, settings: RenderSettings) -> list[Object]:
    batch = cast(Batch, deployment.spec.batch)  # required in batch mode (the CRD's rules)
    env = [
        *model_env(deployment, model, settings),
        env_var(Env.INPUT, batch.input),
        env_var(Env.OUTPUT, batch.output),
        env_var(Env.FORMAT, batch.format.value),
        # Each pod reads its own shard index from JOB_COMPLETION_INDEX.
        env_var(Env.SHARD_COUNT, batch.parallelism),
    ]
    if batch.id_column:
        env.append(env_var(Env.ID_COLUMN, batch.id_column))
    if batch.schedule:
        # A scheduled run scores only the files no earlier run has scored.
        env.append(env_var(Env.ONLY_NEW, "true"))
    labels = {**selector_labels(deployment, ROLE), MODEL_VERSION_LABEL: model.version}
    template = pod_template(deployment, settings, [Command.batch.value], env, labels, restart_policy="Never")
    job_spec = {
        "completionMode": "Indexed",
        "completions": batch.parallelism,
        "parallelism": batch.parallelism,
        "backoffLimit": 3,
        "template": template,
    }
    if batch.schedule:
        return [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": deployment.name},
                "spec": {
                    "schedule": batch.schedule,
                    "suspend": batch.suspend,
                    "concurrencyPolicy": batch.concurrency_policy.value,
                    "successfulJobsHistoryLimit": 3,
                    "failedJobsHistoryLimit": 3,
                    "jobTemplate": {"metadata": {"labels": labels}, "spec": job_spec},
                },
            }
        ]
    # A Job's template cannot change, so a one-off run is named after what it runs: an
    # edited spec makes a new Job (the old one is pruned), an unchanged one reuses it.
    # No TTL: a finished Job that vanished would be created, and run, again.
    return [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": f"{deployment.name}-{content_hash(job_spec)[:8]}"},
            "spec": {**job_spec, "suspend": batch.suspend},
        }
    ]
