"""Three `threadline import` processes of one file against one database: no deadlock, one copy each."""

from __future__ import annotations

import json
import subprocess

from hostile_helpers import good_record, write_lines
from sqlalchemy import func, select
from support import threadline_command

from threadline.db.models import Contact, Conversation, Message

CONVERSATIONS = 2400  # five store batches, so batches of different processes overlap in time
CONTACTS = 60  # shared by many conversations, in a different order in every batch


def test_three_concurrent_imports_of_one_file_never_deadlock(cli_env, db_engine, tmp_path):
    lines = []
    for i in range(CONVERSATIONS):
        record = good_record(f"c-{(i * 7919) % CONVERSATIONS}", i)
        record["customer"] = {"id": f"u-{(i * 37) % CONTACTS}", "email": f"u{i % CONTACTS}@example.com"}
        lines.append(json.dumps(record))
    path = write_lines(tmp_path / "shared.jsonl", lines)
    command = [*threadline_command(), "import", str(path), "--source", "shared", "--json"]
    processes = [
        subprocess.Popen(command, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
        assert "Deadlock" not in stderr and "Traceback" not in stderr
        report = json.loads(stdout)
        assert report["valid_records"] == CONVERSATIONS and report["rejected"] == 0
    reports = [json.loads(stdout) for stdout, _ in outputs]
    assert sum(r["inserted"] for r in reports) == CONVERSATIONS
    with db_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Conversation)).scalar_one() == CONVERSATIONS
        assert conn.execute(select(func.count()).select_from(Message)).scalar_one() == 2 * CONVERSATIONS
        assert conn.execute(select(func.count()).select_from(Contact)).scalar_one() == CONTACTS
