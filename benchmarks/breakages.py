"""The breakages of ``benchmarks/breakage_check.py``: each a small patch to the code and the tests
that must fail once it is applied."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Edit:
    file: str
    old: str
    new: str


@dataclass(frozen=True)
class Breakage:
    name: str
    what: str  # the deliberate breakage, in words (the first column of the table)
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]  # pytest node ids, run in this order with -x


T_FEATURES = "tests/mast_core/test_features.py"
T_INGEST = "tests/pipelines/data/test_ingest.py"
T_AST = "tests/mast_core/test_ast.py"
T_IMAGENET = "tests/mast_core/test_imagenet.py"
T_SWEEP = "tests/pipelines/evaluation/test_sweep.py"
T_FINETUNE = "tests/pipelines/evaluation/test_finetune.py"
T_PRETRAIN = "tests/pipelines/pretrain/test_pretrain.py"
T_STREAM = "tests/pipelines/data/test_stream.py"
T_MAST = "tests/mast_core/test_mast.py"
T_SSMAST = "tests/mast_core/test_ssmast.py"
T_VIEWS = "tests/mast_core/test_views.py"

_MERGE_FIRST_SHARD = Edit(
    "mast_core/features.py",
    "    return FeatureStats(mean=mean, std=math.sqrt(sum_sq_dev / count), num_frames=count)",
    "    first = next(part for part in parts if part.num_frames)  # BROKEN\n"
    "    return FeatureStats(mean=first.mean + 3.0, std=first.std * 2.0, num_frames=count)",
)
_MERGE_LIST = Edit(
    "mast_core/features.py",
    "    for part in parts:",
    "    parts = list(parts)\n    for part in parts:",
)

BREAKAGES: tuple[Breakage, ...] = (
    # ---------------------------------------------------------------- the table
    Breakage(
        "resume-restores-no-state",
        "`load_training_state` restores no model, optimiser or scheduler state",
        (
            Edit("pipelines/pretrain/state.py", '    model.load_state_dict(saved["model"])', "    pass  # BROKEN: no weights restored"),
            Edit(
                "pipelines/pretrain/state.py", '    optimizer.load_state_dict(saved["optimizer"])', "    pass  # BROKEN: no optimiser state"
            ),
            Edit(
                "pipelines/pretrain/state.py",
                '    scheduler.load_state_dict(saved["scheduler"])',
                "    pass  # BROKEN: no schedule position",
            ),
        ),
        (f"{T_PRETRAIN}::test_a_killed_worker_resumes_from_the_last_checkpoint", "tests/e2e/test_pretrain_resume.py"),
    ),
    Breakage(
        "merge-stats-first-shard",
        "`merge_stats` returns the first shard's stats with mean +3 and std x2 (unit test)",
        (_MERGE_LIST, _MERGE_FIRST_SHARD),
        (f"{T_FEATURES}::test_merge_stats_equals_stats_over_the_concatenated_clips",),
    ),
    Breakage(
        "merge-stats-first-shard-ingest",
        "`merge_stats` returns the first shard's stats with mean +3 and std x2 (ingest manifest)",
        (_MERGE_LIST, _MERGE_FIRST_SHARD),
        (f"{T_INGEST}::test_each_layout_ingests_to_the_right_counts_labels_splits_and_folds[us8k]",),
    ),
    Breakage(
        "ingest-stats-first-clip",
        "each shard's statistics summarise only its first clip",
        (
            Edit(
                "pipelines/data/ingest.py",
                '"stats": compute_stats(specs).to_dict() if specs else None,',
                '"stats": compute_stats(specs[:1]).to_dict() if specs else None,  # BROKEN',
            ),
        ),
        (f"{T_INGEST}::test_each_layout_ingests_to_the_right_counts_labels_splits_and_folds[speech_commands]",),
    ),
    Breakage(
        "ast-positions-beyond-table-zero",
        "AST position interpolation beyond the stored table returns zeros",
        (
            Edit(
                "mast_core/ast.py",
                "        return F.interpolate(",
                "        return 0.0 * F.interpolate(",
            ),
        ),
        (f"{T_AST}::test_position_table_truncates_and_interpolates",),
    ),
    Breakage(
        "ast-imagenet-not-loaded",
        "`load_state_dict` skipped for AST in `init_from_imagenet`",
        (
            Edit(
                "mast_core/imagenet.py",
                "    model.load_state_dict(adapted)",
                '    if getattr(model, "arch", None) != "ast":  # BROKEN\n        model.load_state_dict(adapted)',
            ),
        ),
        (f"{T_IMAGENET}::test_ast_from_deit_file",),
    ),
    Breakage(
        "linear-trial-trains-on-test",
        "the test rows (NaN-poisoned by the test) joined to every linear trial's training rows",
        (
            Edit(
                "pipelines/evaluation/sweep.py",
                "    trainable = tune.with_parameters(linear_trial, rounds=rounds, num_classes=num_classes)",
                "    leaked = [{**r, 'train': (torch.cat([r['train'][0], t[0]]), torch.cat([r['train'][1], t[1]]))}  # BROKEN\n"
                "              for r, t in zip(rounds, tests)]\n"
                "    trainable = tune.with_parameters(linear_trial, rounds=leaked, num_classes=num_classes)",
            ),
        ),
        (f"{T_SWEEP}::test_the_test_split_never_reaches_selection",),
    ),
    Breakage(
        "linear-trial-validates-on-test",
        "the test rows joined to every linear trial's validation rows (accuracy stays finite)",
        (
            Edit(
                "pipelines/evaluation/sweep.py",
                "    trainable = tune.with_parameters(linear_trial, rounds=rounds, num_classes=num_classes)",
                "    leaked = [{**r, 'validation': (torch.cat([r['validation'][0], t[0]]), torch.cat([r['validation'][1], t[1]]))}"
                "  # BROKEN\n"
                "              for r, t in zip(rounds, tests)]\n"
                "    trainable = tune.with_parameters(linear_trial, rounds=leaked, num_classes=num_classes)",
            ),
        ),
        (f"{T_SWEEP}::test_the_test_split_never_reaches_selection",),
    ),
    Breakage(
        "finetune-trial-validates-on-test",
        "a fine-tune trial's validation stream also reads the test clips",
        (
            Edit(
                "pipelines/evaluation/finetune.py",
                '        "validation": role_stream(task, roles["validation"], settings, "eval"),',
                '        "validation": role_stream(task, {"splits": roles["validation"]["splits"] + roles["test"]["splits"]},  # BROKEN\n'
                '                                  settings, "eval"),',
            ),
        ),
        (f"{T_FINETUNE}::test_finetune_sweep_trains_in_tune_and_never_sees_test",),
    ),
    # ---------------------------------------------------------------- reading findings
    Breakage(
        "ingest-fold-relabelled",
        "ingest writes fold 10's clips as fold 1 (every fold still one of the expected ones)",
        (
            Edit(
                "pipelines/data/ingest.py",
                '        rows["fold"].append(record.fold)',
                '        rows["fold"].append(1 if record.fold == 10 else record.fold)  # BROKEN',
            ),
        ),
        (f"{T_INGEST}::test_each_layout_ingests_to_the_right_counts_labels_splits_and_folds[us8k]",),
    ),
    Breakage(
        "pretrain-encoder-frozen",
        "pretraining builds its objective with a frozen encoder (only the heads learn)",
        (
            Edit(
                "pipelines/pretrain/loop.py",
                "    if config.model.imagenet:",
                "    encoder.requires_grad_(False)  # BROKEN\n    if config.model.imagenet:",
            ),
        ),
        (f"{T_PRETRAIN}::test_every_model_choice_builds_and_takes_a_step",),
    ),
    Breakage(
        "pretrain-single-worker",
        "pretraining starts one Train worker whatever `run.num_workers` says",
        (
            Edit(
                "pipelines/pretrain/driver.py",
                "num_workers=config.run.num_workers,",
                "num_workers=1,  # BROKEN\n",
            ),
        ),
        (f"{T_PRETRAIN}::test_two_worker_pretraining_logs_to_mlflow_and_exports",),
    ),
    Breakage(
        "stream-labels-shuffled",
        "the stream pairs each batch's labels with the clips in reverse order",
        (
            Edit(
                "pipelines/data/stream.py",
                '    labels = [batch["label_indices"][i] for i in keep]',
                '    labels = [batch["label_indices"][i] for i in reversed(keep)]  # BROKEN',
            ),
        ),
        (f"{T_STREAM}::test_downstream_eval_stream_is_deterministic_with_labels_and_lengths",),
    ),
    Breakage(
        "stream-lengths-one-short",
        "the stream reports one frame fewer than a padded clip has",
        (
            Edit(
                "pipelines/data/stream.py",
                "    return padded, max(frames_for_samples(length), 16)",
                "    return padded, max(frames_for_samples(length) - 1, 16)  # BROKEN",
            ),
        ),
        (f"{T_STREAM}::test_downstream_eval_stream_is_deterministic_with_labels_and_lengths",),
    ),
    Breakage(
        "fold-tests-overlap",
        "each fold round's test set also takes the validation fold (test sets overlap)",
        (
            Edit(
                "pipelines/evaluation/tasks.py",
                '"test": {"folds": [fold]}}',
                '"test": {"folds": [fold, validation]}}  # BROKEN',
            ),
        ),
        (f"{T_SWEEP}::test_fold_task_scores_the_mean_over_folds",),
    ),
    Breakage(
        "fold-scored-on-wrong-fold",
        "each fold's refitted probe is scored on the next fold's test rows",
        (
            Edit(
                "pipelines/evaluation/sweep.py",
                "        for data_round, (test_x, test_y) in zip(rounds, tests):",
                "        for data_round, (test_x, test_y) in zip(rounds, tests[1:] + tests[:1]):  # BROKEN",
            ),
        ),
        (f"{T_SWEEP}::test_fold_task_scores_the_mean_over_folds",),
    ),
    Breakage(
        "mast-relative-bias-zeroed",
        "MAST's relative-position bias multiplied by 0 (its tables get all-zero gradients)",
        (
            Edit(
                "mast_core/mast.py",
                "        bias = bias_f[..., :, None] + bias_t[..., None, :]",
                "        bias = 0.0 * (bias_f[..., :, None] + bias_t[..., None, :])  # BROKEN",
            ),
        ),
        (f"{T_MAST}::test_gradients_reach_every_parameter",),
    ),
    Breakage(
        "ssmast-student-zeroed",
        "SS-MAST's query is computed from 0 x the student's embedding (the student gets zero gradients)",
        (
            Edit(
                "mast_core/ssmast.py",
                "self.student_head(self.student(",
                "self.student_head(0.0 * self.student(",
            ),
        ),
        (f"{T_SSMAST}::test_gradients_reach_the_student_only",),
    ),
    Breakage(
        "drop-path-scales-in-eval",
        "drop path scales the residual branches by (1 - rate) in eval mode",
        (
            Edit(
                "mast_core/layers.py",
                "        if self.rate == 0.0 or not self.training:",
                "        if self.rate and not self.training:  # BROKEN\n"
                "            return x * (1.0 - self.rate)\n"
                "        if self.rate == 0.0 or not self.training:",
            ),
        ),
        (f"{T_AST}::test_drop_path_only_in_training",),
    ),
    Breakage(
        "ray-start-cluster-not-joined",
        "commands ignore a `ray start` cluster on the machine and start their own Ray",
        (Edit("pipelines/common/runtime.py", "        address = running_local_cluster()\n", "        address = None  # BROKEN\n"),),
        ("tests/pipelines/common/test_runtime.py::test_mast_ingest_joins_a_ray_start_cluster_found_through_its_cluster_file",),
    ),
    Breakage(
        "check-cluster-accepts-local-storage",
        "mast check-cluster no longer checks where a multi-node cluster keeps its runs",
        (Edit("pipelines/cluster.py", "    if nodes <= 1:\n        return []", "    if True:  # BROKEN\n        return []"),),
        ("tests/pipelines/test_cluster.py",),
    ),
    Breakage(
        "sweep-state-local-not-bucket",
        "a sweep's Tune state goes to a local folder named like the bucket, not to the bucket",
        (
            Edit(
                "pipelines/evaluation/sweep.py",
                "run_config=tune.RunConfig(name=name, verbose=0, callbacks=callbacks, **store.train_storage(storage)),",
                "run_config=tune.RunConfig(name=name, verbose=0, callbacks=callbacks, storage_path=str(Path(storage).resolve())),  # BROKEN",
            ),
        ),
        ("tests/pipelines/evaluation/test_remote_eval.py::test_sweep_with_shards_state_cache_and_report_in_the_bucket",),
    ),
    Breakage(
        "train-workers-ignore-worker-resources",
        "run.worker_resources is not given to Train: both workers may land on one node",
        (Edit("pipelines/pretrain/driver.py", "                **config.run.worker_resources,\n", ""),),
        ("tests/e2e/test_cluster.py::test_pretrain_job_survives_the_loss_of_a_worker_node",),
    ),
    Breakage(
        "patch-drop-compacted-positions",
        "after patch-drop, relative time distances use the compacted column numbers again",
        (
            Edit(
                "mast_core/mast.py",
                "                positions = kept.to(image.device, torch.float32)\n",
                "                positions = None\n",
            ),
        ),
        (f"{T_MAST}::test_every_stage_measures_true_time_distances_after_patch_drop",),
    ),
    Breakage(
        "mixup-memory-pushed-per-view",
        "the mixup memory is filled once per view, so a view can take a partner from its own batch",
        (
            Edit(
                "mast_core/views.py",
                "            views.append(self.masks(self.crop(mixed if normalized_first else normalize(mixed, self.mean, self.std))))\n",
                "            views.append(self.masks(self.crop(mixed if normalized_first else normalize(mixed, self.mean, self.std))))\n"
                "            self.mixup.push(base)\n",
            ),
            Edit("mast_core/views.py", "        self.mixup.push(base)  # once per batch", "        pass  # once per batch"),
        ),
        (f"{T_VIEWS}::test_the_memory_is_filled_once_per_batch_with_distinct_clips",),
    ),
    Breakage(
        "ssast-on-augmented-views",
        "SSAST pretrains on the SS-MAST augmentation chain",
        (Edit("mast_core/ssast.py", "    augmented_views = False", "    augmented_views = True"),),
        (f"{T_VIEWS}::test_ssast_trains_on_clean_spectrograms_and_ssmast_on_two_augmented_views",),
    ),
    Breakage(
        "ranks-start-from-different-queues",
        "each rank builds its model from seed + rank and the key queue is not broadcast",
        (
            Edit(
                "pipelines/pretrain/loop.py",
                "        torch.manual_seed(config.run.seed)\n        self.model",
                "        torch.manual_seed(config.run.seed + self.rank)\n        self.model",
            ),
            Edit("pipelines/pretrain/loop.py", "            broadcast_buffers(self.model)  #", "            pass  #"),
        ),
        (f"{T_PRETRAIN}::test_two_worker_pretraining_logs_to_mlflow_and_exports",),
    ),
    Breakage(
        "weight-decay-on-norms-and-tables",
        "every trainable parameter gets weight decay (norms, biases, position tables)",
        (Edit("mast_core/optim.py", "    return param.ndim > 1 and not", "    return True or not"),),
        ("tests/mast_core/test_optim.py",),
    ),
    Breakage(
        "monitor-never-runs",
        "validation no longer runs the representation monitor",
        (Edit("pipelines/pretrain/loop.py", "        self.monitor(embeddings, labels)\n", ""),),
        (f"{T_PRETRAIN}::test_two_worker_pretraining_logs_to_mlflow_and_exports",),
    ),
    Breakage(
        "report-without-intervals",
        "mast report drops the bootstrap interval from its cells",
        (Edit("pipelines/evaluation/report.py", "    if value.low is not None:", "    if False:"),),
        (f"{T_SWEEP}::test_report_renders_the_table_from_mlflow",),
    ),
    # ---------------------------------------------------------------- nothing lost, nothing seen twice
    Breakage(
        "resume-restarts-the-epoch",
        "a resumed run starts its interrupted epoch over (trains the skipped batches again)",
        (
            Edit(
                "pipelines/pretrain/loop.py",
                '            skip, progress["batches_in_epoch"] = progress["batches_in_epoch"], 0',
                '            skip, progress["batches_in_epoch"] = 0, 0  # BROKEN',
            ),
        ),
        (f"{T_PRETRAIN}::test_a_killed_worker_resumes_from_the_last_checkpoint",),
    ),
    Breakage(
        "resume-forgets-the-mixup-memory",
        "a resumed run does not rebuild the mixup memory from the batches it skips",
        (
            Edit(
                "pipelines/pretrain/loop.py",
                "                        self.train_views.remember(clip_input(batch).to(self.device))",
                "                        pass  # BROKEN",
            ),
        ),
        (f"{T_PRETRAIN}::test_a_killed_worker_resumes_from_the_last_checkpoint",),
    ),
    Breakage(
        "resume-counts-bad-clips-twice",
        "a resumed run counts again the bad clips of the batches it skips",
        (
            Edit(
                "pipelines/pretrain/loop.py", "                        self.corrupt = counted\n", "                        pass  # BROKEN\n"
            ),
        ),
        (f"{T_PRETRAIN}::test_a_killed_worker_resumes_from_the_last_checkpoint",),
    ),
    Breakage(
        "torch-draws-from-the-rng-history",
        "torch is not reseeded per micro-batch (patch-drop follows the RNG's history)",
        (
            Edit(
                "pipelines/pretrain/loop.py",
                '                torch.manual_seed(step_seed(config.run.seed, self.rank, progress["step"], self.micro))',
                "                pass  # BROKEN",
            ),
        ),
        (f"{T_PRETRAIN}::test_a_killed_worker_resumes_from_the_last_checkpoint",),
    ),
    Breakage(
        "corrupt-clips-trained-on",
        "clips that did not decode are trained on as silence, not skipped and counted",
        (
            Edit(
                "pipelines/data/stream.py",
                "        bad = [i for i, error in enumerate(errors) if error]",
                "        bad = []  # BROKEN",
            ),
        ),
        (f"{T_STREAM}::test_usable_batches_drop_flagged_clips_and_refill_to_the_batch_size",),
    ),
    Breakage(
        "sweep-embeds-corrupt-clips",
        "the sweep's embedding pass keeps clips that did not decode",
        (
            Edit(
                "pipelines/evaluation/embeddings.py",
                '        good = [i for i, error in enumerate(batch["error"]) if not error]',
                '        good = list(range(len(batch["error"])))  # BROKEN',
            ),
        ),
        (f"{T_SWEEP}::test_clips_that_no_longer_decode_are_skipped_and_counted_and_a_broken_shard_fails_at_start",),
    ),
    Breakage(
        "symlinks-may-leave-the-root",
        "the root check follows paths but not symlinks",
        (
            Edit(
                "pipelines/data/layouts/base.py",
                "    return os.path.commonpath([real_root, os.path.realpath(path)]) != real_root",
                "    return os.path.commonpath([real_root, os.path.abspath(path)]) != real_root  # BROKEN",
            ),
        ),
        ("tests/pipelines/data/test_layouts.py::test_metadata_paths_that_leave_the_root_are_excluded_unless_allowed",),
    ),
    Breakage(
        "long-windows-off-by-a-sample",
        "window-by-window embedding reads each window one sample late",
        (
            Edit(
                "mast_core/embed.py",
                "        wave = torch.as_tensor(read(start * self.frame_hop, count))",
                "        wave = torch.as_tensor(read(start * self.frame_hop + 1, count))  # BROKEN",
            ),
        ),
        ("tests/mast_core/test_embed_long.py",),
    ),
    Breakage(
        "hear-timestamps-not-interpolated",
        "HEAR's 50 ms grid takes the earlier token instead of interpolating",
        (
            Edit(
                "mast_core/hear.py",
                "    return tokens[lower] * (1 - weight) + tokens[upper] * weight",
                "    return tokens[lower]  # BROKEN",
            ),
        ),
        ("tests/mast_core/test_hear.py",),
    ),
    Breakage(
        "log-mel-passes-misaligned",
        "a CPU batch computed in several passes writes every pass from the batch's first clips",
        (
            Edit(
                "mast_core/features.py",
                "_log_mel_rows(wave[start : start + rows], sample_rate, num_mel_bins, window, hop, fft_size)",
                "_log_mel_rows(wave[: min(rows, wave.shape[0] - start)], sample_rate, num_mel_bins, window, hop, fft_size)  # BROKEN",
            ),
        ),
        (f"{T_FEATURES}::test_cpu_batch_in_several_passes_equals_one_pass",),
    ),
    Breakage(
        "trial-metrics-at-step-zero",
        "the sweep's MLflow callback logs every report of a trial at step 0 (no BROKEN mark: inside a call)",
        (Edit("pipelines/evaluation/sweep.py", "Metric(key, float(value), now, step)", "Metric(key, float(value), now, 0)"),),
        (f"{T_SWEEP}::test_fold_task_scores_the_mean_over_folds",),
    ),
    Breakage(
        "probe-adamw-without-weight-decay",
        "the probe's AdamW drops the weight decay",
        (Edit("mast_core/probe.py", "            weight_decay=self.weight_decay,", "            weight_decay=0.0,  # BROKEN"),),
        ("tests/mast_core/test_probe.py::test_probe_optimiser_is_torch_adamw_bit_for_bit_and_does_not_import_dynamo",),
    ),
    Breakage(
        "sweep-concurrency-not-reaching-tune",
        "the sweep's trial concurrency limit is not given to Tune's search generator",
        (
            Edit(
                "pipelines/evaluation/sweep.py",
                "search_alg=BasicVariantGenerator(random_state=space.seed, max_concurrent=concurrency or 0),",
                "search_alg=BasicVariantGenerator(random_state=space.seed),  # BROKEN",
            ),
        ),
        (f"{T_FINETUNE}::test_finetune_sweep_trains_in_tune_and_never_sees_test",),
    ),
)
