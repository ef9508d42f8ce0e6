"""``ckptkit card`` and ``ckptkit upload``: thin click layers over :mod:`ckptkit.hub`.

Only click is imported at module level; huggingface_hub is imported when a command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from ckptkit.cli.common import emit_json, format_table, human_bytes, info, json_option, quiet_option

folder_argument = click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
card_paths_option = click.option(
    "--card-paths", type=click.Choice(["public", "full"]), default=None,
    help="public (default): the card and the uploaded ckptkit.json show local paths relative to the working "
         "directory, or only the file's own name when outside it; full: as recorded.")


@click.command("card")
@folder_argument
@click.option("--language", "languages", multiple=True, metavar="CODE",
              help="Language of the model (ISO 639-1, e.g. ko); repeat for several.")
@click.option("--license", "license_", metavar="ID", help="Hub license id, e.g. apache-2.0.")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Extra tag; repeat for several.")
@click.option("--base-model", metavar="REPO_ID", help="Hub id this model derives from (default: from ckptkit.json).")
@click.option("--base-model-relation", type=click.Choice(["adapter", "merge", "quantized", "finetune"]),
              help="How this model relates to --base-model, one of the Hub's values (default: none written; "
                   "a format conversion and a distilled student match none).")
@click.option("--repo-id", metavar="NAMESPACE/NAME", help="Hub id the folder is published as (used in the snippet).")
@card_paths_option
@quiet_option
@json_option
def card_command(folder: Path, languages: tuple[str, ...], license_: str | None, tags: tuple[str, ...],
                 base_model: str | None, base_model_relation: str | None, repo_id: str | None,
                 card_paths: str | None, quiet: bool, as_json: bool) -> None:
    """(Re)write FOLDER/README.md, the model card, from FOLDER/ckptkit.json.

    Options are remembered in ckptkit.json, so a later `ckptkit card FOLDER` writes the same
    card. Your own sections below the line
    `<!-- ckptkit: your own sections below this line are kept -->` are kept.

    \b
    Example:
      ckptkit card out/kobert --language ko --license apache-2.0 --tag korean
    """
    from ckptkit.output.card import write_model_card
    from ckptkit.output.record import read_record

    path = write_model_card(folder, language=list(languages) or None, license=license_,
                            tags=list(tags) or None, base_model=base_model, repo_id=repo_id, paths=card_paths,
                            base_model_relation=base_model_relation)
    if as_json:
        emit_json({"path": str(path), "card": read_record(folder).get("card") or {}})
    else:
        info(f"wrote {path}", quiet=quiet)


def _print_plan(result, *, quiet: bool) -> None:
    rows = [[f.path, human_bytes(f.size), f.action] for f in result.files]
    click.echo(format_table(rows, ["file", "size", "action"], right={1}))
    if not quiet:
        click.echo(f"\n{len(result.uploaded)} files, {human_bytes(result.total_bytes)} to {result.endpoint}; "
                   f"{len(result.skipped)} skipped")
        for step in result.steps:
            click.echo(f"  - {step}")


@click.command("upload")
@folder_argument
@click.option("--repo-id", required=True, metavar="NAMESPACE/NAME",
              help="Hub repo to upload to (created if missing). For a folder of parts (ELECTRA's discriminator/ "
                   "and generator/): one repo with subfolders, or one repo per part with a {part} placeholder.")
@click.option("--private", is_flag=True, help="Create the repo private (an existing repo keeps its visibility).")
@click.option("--commit-message", metavar="TEXT", help="Commit message (default: 'Upload NAME with ckptkit VERSION').")
@click.option("--revision", metavar="BRANCH", help="Branch to commit to (created if missing); default main.")
@click.option("--create-pr", is_flag=True, help="Open a pull request instead of committing to the branch.")
@click.option("--dry-run", is_flag=True, help="List every file, its size and what would be done; no token needed.")
@click.option("--endpoint", envvar="HF_ENDPOINT", metavar="URL",
              help="Hub URL (default: $HF_ENDPOINT, else https://huggingface.co).")
@click.option("--no-card-update", is_flag=True, help="Do not refresh README.md from ckptkit.json before uploading.")
@card_paths_option
@quiet_option
@json_option
def upload_command(folder: Path, repo_id: str, private: bool, commit_message: str | None, revision: str | None,
                   create_pr: bool, dry_run: bool, endpoint: str | None, no_card_update: bool,
                   card_paths: str | None, quiet: bool, as_json: bool) -> None:
    """Upload FOLDER to the Hugging Face Hub as NAMESPACE/NAME, in one commit.

    The token comes from HF_TOKEN or `hf auth login` (huggingface-cli login) and is never
    printed. Temporary and cache files are skipped. If anything fails, run the same command
    again: it resumes and does not send twice what already arrived. The card and ckptkit.json
    go up with local paths relative to the working directory (--card-paths full keeps them).
    A folder of parts (ELECTRA's discriminator/ and generator/) goes up as one repo with
    subfolders, or as one repo per part with --repo-id my-user/electra-{part}.

    \b
    Examples:
      ckptkit upload out/kobert --repo-id my-user/kobert --dry-run
      ckptkit upload out/kobert --repo-id my-user/kobert --private
      ckptkit upload out/kobert --repo-id my-org/kobert --revision v2 --create-pr
    """
    from ckptkit.hub.publish import upload

    results = upload(folder, repo_id=repo_id, private=private, commit_message=commit_message,
                     revision=revision, create_pr=create_pr, dry_run=dry_run, endpoint=endpoint,
                     update_card=not no_card_update, card_paths=card_paths or "public")
    if as_json:
        emit_json(results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results])
        return
    for i, result in enumerate(results):
        if len(results) > 1:
            click.echo(("\n" if i else "") + f"{result.repo_id}:")
        if dry_run:
            _print_plan(result, quiet=quiet)
        else:
            info(f"uploaded {len(result.uploaded)} files ({human_bytes(result.total_bytes)}) to {result.repo_url}",
                 quiet=quiet)
            click.echo(result.url)
