"""`inbox check` (the installed command) on facebook, instagram, whatsapp and bluesky connectors pointed at local
fakes: each account's credentials tried with cheap documented reads, and a missing permission named."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from inbox.fakes import facebook as fb
from inbox.fakes import instagram as ig
from inbox.fakes.bluesky import HANDLE, BlueskyFake
from inbox.fakes.facebook import FacebookFake
from inbox.fakes.instagram import InstagramFake
from inbox.fakes.vendor import Fault
from inbox.fakes.whatsapp import WhatsAppFake
from tests.processes import inbox_env, toml_table
from tests.test_meta_e2e import meta_connectors


class Fakes:
    def __init__(self, *, dm_access: bool = True) -> None:
        self.facebook, self.instagram, self.whatsapp = FacebookFake(), InstagramFake(), WhatsAppFake()
        self.bluesky = BlueskyFake(dm_access=dm_access)
        self.all = (self.facebook, self.instagram, self.whatsapp, self.bluesky)


@pytest.fixture
async def fakes(request: pytest.FixtureRequest) -> AsyncIterator[Fakes]:
    started = Fakes(dm_access=getattr(request, "param", True))
    for fake in started.all:
        await fake.start()
    yield started
    for fake in started.all:
        await fake.close()


def config(folder: Path, fakes: Fakes) -> Path:
    tables = meta_connectors(fakes.facebook, fakes.instagram, fakes.whatsapp, fakes.bluesky)
    path = folder / "inbox.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{folder / "inbox.db"}"\n'
        + "".join(f"\n[[connectors]]\n{toml_table(t)}" for t in tables)
    )
    return path


async def inbox_check(path: Path) -> tuple[int, dict[str, str]]:
    """Exit status, and each connector's line of the table."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("inbox")),
        "check",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=inbox_env(COLUMNS="500"),
    )
    async with asyncio.timeout(120):
        out = (await process.communicate())[0].decode()
    lines = {
        name: line
        for line in out.splitlines()
        for name in ("facebook", "instagram", "whatsapp", "bluesky")
        if f"acme-{name}" in line
    }
    assert process.returncode is not None
    return process.returncode, lines


async def test_each_account_is_tried_and_all_pass(fakes: Fakes, tmp_path: Path) -> None:
    status, lines = await inbox_check(config(tmp_path, fakes))
    assert status == 0, lines
    assert "Page Acme Store (448242228374517): posts and Messenger readable" in lines["facebook"]
    assert "@acme.store" in lines["instagram"] and "media, comments and DMs readable" in lines["instagram"]
    assert "WhatsApp number Acme Support 15550783881: token accepted" in lines["whatsapp"]
    assert f"@{HANDLE}" in lines["bluesky"] and "DMs allowed" in lines["bluesky"]


@pytest.mark.parametrize("fakes", [False], indirect=True)
async def test_each_missing_permission_is_named(fakes: Fakes, tmp_path: Path) -> None:
    page = Fault(200, {}, json.dumps({"id": fb.PAGE_ID, "name": fb.PAGE_NAME}))
    # Meta's code-10 answer does not always name the permission: the call's own is named then.
    fakes.facebook.faults.extend([page, Fault(200, {}, '{"data": []}'), fakes.facebook.fault_permission()])
    account = Fault(200, {}, json.dumps({"id": ig.IG_USER_ID, "username": ig.USERNAME}))
    media = Fault(200, {}, json.dumps({"data": [{"id": ig.MEDIA_ID}]}))
    fakes.instagram.faults.extend([account, media, fakes.instagram.fault_permission()])
    fakes.whatsapp.faults.append(fakes.whatsapp.fault_permission("whatsapp_business_messaging"))
    status, lines = await inbox_check(config(tmp_path, fakes))
    assert status != 0
    assert "FAIL" in lines["facebook"] and "lacks the permission pages_messaging" in lines["facebook"]
    assert "FAIL" in lines["instagram"]
    assert "lacks the permission instagram_business_manage_comments" in lines["instagram"]
    assert "FAIL" in lines["whatsapp"] and "lacks the permission whatsapp_business_messaging" in lines["whatsapp"]
    # A Bluesky app password without DM access still reads mentions: said, not failed.
    assert "FAIL" not in lines["bluesky"] and "DMs are off" in lines["bluesky"]
