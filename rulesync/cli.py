"""`rulesync` command line: validate, compile, test, diff, apply, status.

Exit codes: 0 success, 1 problems found / rejected / timed out, 2 usage errors.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from fleetmon import durations
from rulesync import bundle as bundle_mod
from rulesync import promtool
from rulesync.generate import recipients_text
from rulesync.pipeline import compile_paths
from rulesync.problems import Problem, has_errors
from rulesync.write import EmptyOutput, write_files

PATHS = click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))


def _scrape(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return durations.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scrape-interval") from None


SCRAPE = click.option("--scrape-interval", default=None, metavar="DURATION",
                      help="Scrape interval the windows are checked against (default: the file's "
                           "`scrape_interval`, else 15s).")
_ZK_HOSTS = click.option("--zk", "zk_hosts", default=lambda: os.environ.get("FLEETMON_ZK", "127.0.0.1:2181"),
                        show_default="$FLEETMON_ZK or 127.0.0.1:2181", help="ZooKeeper connect string.")


def _insecure(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    # Read by every client of this process (fleetmon.zk.load_security), which logs a warning.
    if value:
        os.environ["FLEETMON_ZK_INSECURE"] = "true"
    return value


def ZK(f):  # noqa: N802 - used as a decorator like the other option constants
    f = click.option("--zk-insecure", is_flag=True, expose_value=False, callback=_insecure, is_eager=True,
                     help="Plain ZooKeeper without credentials or TLS (development only; logged).")(f)
    return _ZK_HOSTS(f)
ROOT = click.option("--root", default="/fleetmon", show_default=True, help="ZooKeeper root path.")
RECORDED = click.option("--recorded/--no-recorded", "use_recorded", default=None,
                        help="Read fleetmon's recorded series (prometheus/rules/recording.yml) where exactly "
                             "equivalent, or never (for a Prometheus without them). Default: the files' "
                             "`use_recorded`, else on.")


def _report(problems: list[Problem]) -> None:
    for p in problems:
        click.echo(str(p), err=True)


def _compile(paths: tuple[str, ...], scrape: str | None, use_recorded: bool | None = None):
    spec, files, problems = compile_paths(paths, scrape_interval=_scrape(scrape), use_recorded=use_recorded)
    _report(problems)
    if spec is None or has_errors(problems):
        n = sum(p.severity == "error" for p in problems)
        click.echo(f"{n} error(s); nothing compiled", err=True)
        sys.exit(1)
    return spec, files


def _check_generated(files: dict[str, str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rulesync-check-") as d:
        for name, text in files.items():
            Path(d, name).write_text(text)
        ok, out = promtool.check_rules([Path(d, n) for n in sorted(files)])
    if not ok:
        click.echo(f"generated rules rejected by promtool (a rulesync bug, please report):\n{out}", err=True)
        sys.exit(1)


def _connect(zk_hosts: str, role: str = "reader"):
    from fleetmon.zk import ZkSecurityError, make_client

    try:
        client = make_client(zk_hosts, role=role)
    except ZkSecurityError as exc:
        click.echo(f"ZooKeeper security: {exc}", err=True)
        sys.exit(1)
    try:
        client.start(timeout=10)
    except Exception as exc:  # noqa: BLE001 - kazoo raises several types for "unreachable"
        client.close()
        click.echo(f"cannot connect to ZooKeeper at {zk_hosts}: {exc}", err=True)
        sys.exit(1)
    return client


class _Group(click.Group):
    """Turns a missing promtool into a one-line error (exit 1) instead of a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except promtool.PromtoolMissing as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group)
def main() -> None:
    """Compile plain-YAML alert rules to Prometheus rules, test them, and sync every shard."""


@main.command()
@PATHS
@SCRAPE
@RECORDED
def validate(paths: tuple[str, ...], scrape_interval: str | None, use_recorded: bool | None) -> None:
    """Report every problem in PATHS (files or directories) with file:line, field and a hint."""
    spec, _files = _compile(paths, scrape_interval, use_recorded)
    click.echo(f"ok: {len(spec.rules)} rule(s), {len(spec.recipients)} recipient group(s)")


@main.command("compile")
@PATHS
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@SCRAPE
@RECORDED
def compile_cmd(paths: tuple[str, ...], out_dir: str, scrape_interval: str | None,
                use_recorded: bool | None) -> None:
    """Write Prometheus rule files (*.rules.yml) and recipients.yaml for the alert router into --out."""
    t0 = time.perf_counter()
    spec, files = _compile(paths, scrape_interval, use_recorded)
    if not files:
        click.echo("no rules: refusing to write an empty rule set (it would remove every alert)", err=True)
        sys.exit(1)
    _check_generated(files)
    out = dict(files)
    out["recipients.yaml"] = recipients_text(spec)
    try:
        written, removed = write_files(out_dir, out)
    except EmptyOutput as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(f"compiled {len(spec.rules)} rule(s) into {len(files)} file(s) in {out_dir} "
               f"({len(written)} written, {len(removed)} stale removed, {time.perf_counter() - t0:.2f}s)")


@main.command()
@PATHS
@SCRAPE
@click.option("--workers", default=2, show_default=True, help="promtool processes run in parallel.")
@click.option("--keep", type=click.Path(file_okay=False), default=None,
              help="Keep the generated test files in this directory.")
@RECORDED
@click.option("--recording-rules", type=click.Path(dir_okay=False), default=None,
              help="fleetmon's per-host recording rules, loaded beside rules that read recorded series "
                   "[default: prometheus/rules/recording.yml shipped with fleetmon as package data].")
def test(paths: tuple[str, ...], scrape_interval: str | None, workers: int, keep: str | None,
         use_recorded: bool | None, recording_rules: str | None) -> None:
    """Generate promtool unit tests for every rule (plus your `tests:`) and run them."""
    from rulesync.testgen import RecordingRulesError, run_tests

    t0 = time.perf_counter()
    spec, _files = _compile(paths, scrape_interval, use_recorded)
    try:
        rep = run_tests(spec, workdir=keep, workers=workers, recording_rules=recording_rules)
    except RecordingRulesError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    for n in rep.notes:
        click.echo(f"note: {n}", err=True)
    for f in rep.failures:
        click.echo(f, err=True)
    status = "ok" if rep.ok else "FAILED"
    click.echo(f"{status}: {rep.rules_tested} rule(s), {rep.test_files} test file(s), "
               f"{len(rep.failures)} failing, {time.perf_counter() - t0:.1f}s")
    sys.exit(0 if rep.ok else 1)


@main.command()
@PATHS
@SCRAPE
@ZK
@ROOT
@RECORDED
def diff(paths: tuple[str, ...], scrape_interval: str | None, zk_hosts: str, root: str,
         use_recorded: bool | None) -> None:
    """Show rules added, changed and removed against the bundle published in ZooKeeper."""
    from rulesync import publish

    spec, files = _compile(paths, scrape_interval, use_recorded)
    client = _connect(zk_hosts)
    try:
        try:
            old, znode_version = publish.published_with_version(client, root)
        except bundle_mod.BundleError as exc:
            click.echo(f"published bundle is unreadable ({exc}); showing everything as added", err=True)
            old, znode_version = None, getattr(exc, "znode_version", publish.ABSENT)
    finally:
        client.stop()
        client.close()
    added, changed, removed = publish.diff(files, old)
    if old is not None and old.recipients != recipients_text(spec):
        changed.append("(recipients)")
    new_version = bundle_mod.make(files).version
    click.echo(f"published: {old.version if old else '(none)'}  new: {new_version}  "
               f"(znode version {znode_version}: `apply --expect-znode-version {znode_version}` publishes "
               "only if nobody applied since)")
    for name in added:
        click.echo(f"+ {name}")
    for name in changed:
        click.echo(f"~ {name}")
    for name in removed:
        click.echo(f"- {name}")
    if not (added or changed or removed):
        click.echo("no changes")


@main.command()
@PATHS
@SCRAPE
@ZK
@ROOT
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for every shard.")
@click.option("--rules-dir", type=click.Path(file_okay=False), default=None,
              help="Local mode: write into this Prometheus rules directory instead of ZooKeeper.")
@click.option("--prometheus", "prometheus_url", default=None, help="Local mode: the Prometheus to reload.")
@click.option("--recipients-out", type=click.Path(dir_okay=False), default=None,
              help="Also write the alert router's recipients file here (atomically, before publishing, "
                   "so new recipient groups exist before alerts that use them fire).")
@RECORDED
@click.option("--expect-znode-version", type=click.IntRange(min=-1), default=None,
              help="Publish only if the bundle znode still has this version (as `diff` printed; -1: no "
                   "bundle yet). Default: the version read when apply compared, just before publishing.")
@click.option("--signing-key", type=click.Path(dir_okay=False), default=None,
              help="Ed25519 private key (PEM, mode 0600) that signs the bundle [default: "
                   "$FLEETMON_RULES_SIGNING_KEY, else rules-signing.key in $FLEETMON_ZK_SECURITY_DIR].")
@click.option("--unsigned", is_flag=True,
              help="Publish without a signature (only agents run with --rules-allow-unsigned load it).")
def apply(paths: tuple[str, ...], scrape_interval: str | None, zk_hosts: str, root: str, timeout: float,
          rules_dir: str | None, prometheus_url: str | None, recipients_out: str | None,
          use_recorded: bool | None, expect_znode_version: int | None, signing_key: str | None,
          unsigned: bool) -> None:
    """Publish the rules to every shard (or, with --rules-dir/--prometheus, one local Prometheus)."""
    if (rules_dir is None) != (prometheus_url is None):
        raise click.UsageError("local mode needs both --rules-dir and --prometheus")
    t0 = time.perf_counter()
    spec, files = _compile(paths, scrape_interval, use_recorded)
    _check_generated(files)
    try:
        b = bundle_mod.make(files, recipients_text(spec))
        bundle_mod.encode(b)
    except bundle_mod.BundleError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    if recipients_out is not None:
        from fleetmon.atomic import write_if_changed

        try:
            write_if_changed(recipients_out, b.recipients, 0o600)  # read by the router alone
            os.chmod(recipients_out, 0o600)
        except OSError as exc:
            click.echo(f"cannot write {recipients_out}: {exc}", err=True)
            sys.exit(1)
    if rules_dir is not None:
        from rulesync.agent import sync

        res = sync(rules_dir, files, b.version, prometheus_url.rstrip("/"), timeout=timeout)
        if not res.ok:
            click.echo(f"version {b.version} NOT loaded: {res.error}", err=True)
            sys.exit(1)
        click.echo(f"version {b.version} loaded by {prometheus_url} ({time.perf_counter() - t0:.2f}s)")
        return
    from rulesync import publish

    key = None
    if unsigned:
        click.echo("warning: publishing an UNSIGNED bundle; agents that check signatures will reject it", err=True)
    else:
        try:
            key = bundle_mod.load_private_key(signing_key)
        except bundle_mod.BundleError as exc:
            click.echo(f"NOT published: {exc}", err=True)
            sys.exit(1)
    client = _connect(zk_hosts, role="publisher")
    try:
        _check_shards_record(client, root, files)
        expected = expect_znode_version
        if expected is None:
            try:
                old, expected = publish.published_with_version(client, root)
            except bundle_mod.BundleError as exc:  # replaced by a good bundle, still compare-and-set
                old, expected = None, getattr(exc, "znode_version", publish.ABSENT)
            added, changed, removed = publish.diff(files, old)
            click.echo(f"replacing {old.version if old else '(none)'} (znode version {expected}): "
                       f"{len(added)} added, {len(changed)} changed, {len(removed)} removed")
        try:
            publish.publish(client, root, b, expected_version=expected, signing_key=key, unsigned=unsigned)
        except publish.PublishConflict as exc:
            click.echo(f"NOT published: {exc}", err=True)
            sys.exit(1)
        click.echo(f"published version {b.version} ({len(spec.rules)} rules) to {publish.bundle_path(root)}")
        live = publish.live_replicas(client, root)
        if not live:
            click.echo("warning: no live shards registered; nothing to wait for", err=True)
            return
        res = publish.wait_for(client, root, b.version, timeout=timeout)
    finally:
        client.stop()
        client.close()
    for name in res.done:
        click.echo(f"  {name}: loaded {b.version}")
    for name, err in res.failed.items():
        click.echo(f"  {name}: REJECTED: {err}", err=True)
    if res.missing:
        click.echo(f"timed out after {timeout:.0f}s; not reporting {b.version}: {', '.join(res.missing)}", err=True)
    if not res.ok:
        sys.exit(1)
    click.echo(f"all {len(res.done)} shard replica(s) on {b.version} ({time.perf_counter() - t0:.2f}s)")


def _check_shards_record(client, root: str, files: dict[str, str]) -> None:
    """Before publishing: every live shard whose Prometheus we can reach must record the series
    the rules read (each agent checks again before loading; unreachable ones are left to it)."""
    from rulesync import publish
    from rulesync.agent import missing_records, records_used

    needed = records_used(files)
    if not needed:
        return
    refused = []
    for (s, r), url in sorted(publish.replica_prometheus_urls(client, root).items()):
        if url is None:
            continue
        why = missing_records(url.rstrip("/"), needed, timeout=5.0)
        if why is None:
            continue
        if why.startswith("cannot list"):
            click.echo(f"note: {s}/{r}: {why}; its agent checks before loading", err=True)
        else:
            refused.append(f"  {s}/{r}: {why}")
    if refused:
        click.echo("NOT published: shard(s) without fleetmon's recording rules:\n" + "\n".join(refused), err=True)
        sys.exit(1)  # the caller's `finally` closes the client


@main.command()
@ZK
@ROOT
def status(zk_hosts: str, root: str) -> None:
    """Show the published version and the version each live shard replica has loaded."""
    from rulesync import publish

    client = _connect(zk_hosts)
    try:
        b: bundle_mod.Bundle | None = None
        try:
            b = publish.published(client, root)
            version = b.version if b else "(none)"
        except bundle_mod.BundleError as exc:
            version = f"(unreadable: {exc})"
        signature = ""
        if version != "(none)":
            # Checked as the agents check it, when this machine has the public key.
            try:
                key = bundle_mod.load_public_key()
            except bundle_mod.BundleError:
                key = None
            if key is not None:
                try:
                    data, _ = client.get(publish.bundle_path(root))
                    bundle_mod.verify(data, key)
                    signature = "  (signature verified)"
                except bundle_mod.BundleError as exc:
                    signature = f"  (REJECTED by agents: {exc})"
        live = publish.live_replicas(client, root)
        st = publish.statuses(client, root)
    finally:
        client.stop()
        client.close()
    click.echo(f"published: {version}{signature}")
    behind = 0
    for key in sorted(set(live) | set(st)):
        s = st.get(key, {})
        loaded = s.get("loaded_version") or "-"
        state = "ok" if s.get("ok") and s.get("version") == version else "BEHIND"
        if key not in live:
            state = "not live"
        elif state != "ok":
            behind += 1
        if s.get("rejected"):
            err = f"  REJECTED bundle: {s['rejected']}"
        else:
            err = f"  error: {s.get('error')}" if s.get("error") else ""
        click.echo(f"{'/'.join(key):30s} loaded {loaded:18s} {state}{err}")
    sys.exit(1 if behind else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
