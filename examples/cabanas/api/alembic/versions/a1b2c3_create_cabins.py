"""create cabins

Revision ID: a1b2c3
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "a1b2c3"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cabins",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False, server_default="2"),
    )


def downgrade() -> None:
    op.drop_table("cabins")
