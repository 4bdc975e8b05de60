"""tracker links: one story per item of a tracker

Revision ID: 0019_tracker_link_item_unique
Revises: 0018_confusing_volume
Create Date: 2026-12-14

UNIQUE (tracker_id, item_key) on `tracker_links`: `export --link ITEM` of an item already linked
to another story of the same tracker is refused by the database, whatever the race (two links
of one item to two stories take different advisory locks). PostgreSQL treats NULLs as distinct,
so reservations (`item_key` NULL until the item exists) never clash.

An item linked to two stories before this migration stops the upgrade with one line saying how
many: which story keeps the item is a person's decision (remove the other link, then upgrade).
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_tracker_link_item_unique"
down_revision = "0018_confusing_volume"
branch_labels = None
depends_on = None


def upgrade() -> None:
    shared = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT count(*) FROM (SELECT 1 FROM tracker_links WHERE item_key IS NOT NULL"
                " GROUP BY tracker_id, item_key HAVING count(*) > 1) AS shared"
            )
        )
        .scalar()
    )
    if shared:
        raise RuntimeError(
            f"{shared} tracker item(s) are linked to more than one story of the same tracker:"
            " keep one link per item, then upgrade again"
        )
    op.create_unique_constraint("uq_tracker_links_tracker_item", "tracker_links", ["tracker_id", "item_key"])


def downgrade() -> None:
    op.drop_constraint("uq_tracker_links_tracker_item", "tracker_links", type_="unique")
