"""create reservations

Revision ID: d4e5f6
Revises: a1b2c3
"""
import sqlalchemy as sa
from alembic import op

revision = "d4e5f6"
down_revision = "a1b2c3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("cabin_id", sa.Integer, sa.ForeignKey("cabins.id"), nullable=False),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("ends_on", sa.Date, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reservations")
