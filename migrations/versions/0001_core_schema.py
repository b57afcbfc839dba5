"""core schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import geoalchemy2
from sqlalchemy.dialects import postgresql

from gisapproval.config import load_jurisdiction

# The storage SRID is the installation's jurisdiction setting, read when the migration runs.
SRID = load_jurisdiction().srid

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('departments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name_zh', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('is_reviewing', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('parcels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('parcel_code', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('land_use', sa.String(length=16), nullable=False),
    sa.Column('area_m2', sa.Double(), nullable=False),
    sa.Column('geom', geoalchemy2.types.Geometry(geometry_type='MULTIPOLYGON', srid=SRID, dimension=2, from_text='ST_GeomFromEWKT', name='geometry', nullable=False, spatial_index=False), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('parcel_code')
    )
    op.create_index('idx_parcels_geom', 'parcels', ['geom'], unique=False, postgresql_using='gist')
    op.create_table('layers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('title_zh', sa.String(length=200), nullable=False),
    sa.Column('title_en', sa.String(length=200), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('geometry_type', sa.String(length=32), nullable=True),
    sa.Column('feature_key', sa.String(length=64), nullable=True),
    sa.Column('coverage', geoalchemy2.types.Geometry(geometry_type='MULTIPOLYGON', srid=SRID, dimension=2, from_text='ST_GeomFromEWKT', name='geometry', spatial_index=False), nullable=True),
    sa.Column('current_version_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("kind IN ('vector', 'raster')", name='ck_layers_kind'),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_index('idx_layers_coverage', 'layers', ['coverage'], unique=False, postgresql_using='gist')
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('organisation', sa.String(length=200), nullable=True),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('layer_features',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('layer_id', sa.Integer(), nullable=False),
    sa.Column('feature_key', sa.String(length=200), nullable=False),
    sa.Column('valid_from', sa.Integer(), nullable=False),
    sa.Column('valid_to', sa.Integer(), nullable=True),
    sa.Column('attrs', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('geom', geoalchemy2.types.Geometry(srid=SRID, dimension=2, from_text='ST_GeomFromEWKT', name='geometry', nullable=False, spatial_index=False), nullable=False),
    sa.ForeignKeyConstraint(['layer_id'], ['layers.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('idx_layer_features_geom', 'layer_features', ['geom'], unique=False, postgresql_using='gist')
    op.create_index('ix_layer_features_key', 'layer_features', ['layer_id', 'feature_key', 'valid_from'], unique=False)
    op.create_index('ix_layer_features_live', 'layer_features', ['layer_id'], unique=False, postgresql_where=sa.text('valid_to IS NULL'))
    op.create_table('layer_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('layer_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source_name', sa.String(length=500), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('count_added', sa.Integer(), nullable=False),
    sa.Column('count_changed', sa.Integer(), nullable=False),
    sa.Column('count_removed', sa.Integer(), nullable=False),
    sa.Column('count_unchanged', sa.Integer(), nullable=False),
    sa.Column('raster_path', sa.String(length=1000), nullable=True),
    sa.Column('affected_project_ids', sa.ARRAY(sa.Integer()), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint("state IN ('importing', 'live', 'failed')", name='ck_layer_versions_state'),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['layer_id'], ['layers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('layer_id', 'number')
    )
    op.create_table('projects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('receipt_no', sa.String(length=40), nullable=True),
    sa.Column('query_code', sa.String(length=16), nullable=True),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('name_en', sa.String(length=300), nullable=True),
    sa.Column('applicant_id', sa.Integer(), nullable=False),
    sa.Column('applicant_org', sa.String(length=200), nullable=False),
    sa.Column('is_green_channel', sa.Boolean(), nullable=False),
    sa.Column('coordinator_id', sa.Integer(), nullable=True),
    sa.Column('current_stage', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('draft', 'submitted', 'in_review', 'in_correction', 'approved', 'rejected', 'completed', 'withdrawn')", name='ck_projects_status'),
    sa.ForeignKeyConstraint(['applicant_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['coordinator_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code'),
    sa.UniqueConstraint('receipt_no')
    )
    op.create_table('user_roles',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.CheckConstraint("role IN ('applicant', 'clerk', 'reviewer', 'leader', 'layer_editor', 'supervisor', 'admin')", name='ck_user_roles_role'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'role')
    )
    op.create_table('buildings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('height_m', sa.Double(), nullable=False),
    sa.Column('floors', sa.Integer(), nullable=False),
    sa.Column('gfa_m2', sa.Double(), nullable=False),
    sa.Column('use', sa.String(length=32), nullable=False),
    sa.Column('geom', geoalchemy2.types.Geometry(geometry_type='MULTIPOLYGON', srid=SRID, dimension=2, from_text='ST_GeomFromEWKT', name='geometry', nullable=False, spatial_index=False), nullable=False),
    sa.CheckConstraint('floors > 0', name='ck_buildings_floors'),
    sa.CheckConstraint('gfa_m2 > 0', name='ck_buildings_gfa'),
    sa.CheckConstraint('height_m > 0', name='ck_buildings_height'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('idx_buildings_geom', 'buildings', ['geom'], unique=False, postgresql_using='gist')
    op.create_index(op.f('ix_buildings_project_id'), 'buildings', ['project_id'], unique=False)
    op.create_table('events',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('is_automated', sa.Boolean(), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('subject_type', sa.String(length=32), nullable=False),
    sa.Column('subject_id', sa.String(length=64), nullable=True),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_events_project_id'), 'events', ['project_id'], unique=False)
    op.create_index('ix_events_subject', 'events', ['subject_type', 'subject_id'], unique=False)
    op.create_table('project_parcels',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('parcel_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['parcel_id'], ['parcels.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'parcel_id')
    )
    op.create_table('stage_instances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('accepted_on', sa.Date(), nullable=True),
    sa.Column('decided_on', sa.Date(), nullable=True),
    sa.CheckConstraint("status IN ('intake', 'in_review', 'in_correction', 'approved', 'rejected')", name='ck_stage_instances_status'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('project_id', 'stage')
    )
    op.create_table('check_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('stage_instance_id', sa.Integer(), nullable=True),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('layer_versions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stage_instance_id'], ['stage_instances.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_check_runs_project_id'), 'check_runs', ['project_id'], unique=False)
    op.create_table('correction_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stage_instance_id', sa.Integer(), nullable=False),
    sa.Column('issued_by_id', sa.Integer(), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('items', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('open', 'answered', 'withdrawn')", name='ck_correction_notices_status'),
    sa.ForeignKeyConstraint(['issued_by_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['stage_instance_id'], ['stage_instances.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_correction_notices_stage_instance_id'), 'correction_notices', ['stage_instance_id'], unique=False)
    op.create_table('review_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stage_instance_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('legal_limit_days', sa.Integer(), nullable=False),
    sa.Column('committed_limit_days', sa.Integer(), nullable=False),
    sa.Column('needs_leader_signoff', sa.Boolean(), nullable=False),
    sa.Column('is_deemed_on_timeout', sa.Boolean(), nullable=False),
    sa.Column('assigned_reviewer_id', sa.Integer(), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('opinion', sa.Text(), nullable=True),
    sa.Column('conditions', sa.Text(), nullable=True),
    sa.Column('row_version', sa.Integer(), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'in_review', 'approved', 'approved_with_conditions', 'correction_requested', 'rejected', 'deemed_approved')", name='ck_review_tasks_status'),
    sa.ForeignKeyConstraint(['assigned_reviewer_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ),
    sa.ForeignKeyConstraint(['stage_instance_id'], ['stage_instances.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('stage_instance_id', 'department_id')
    )
    op.create_table('check_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('check_run_id', sa.Integer(), nullable=False),
    sa.Column('building_id', sa.Integer(), nullable=True),
    sa.Column('rule_id', sa.String(length=64), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('measured', sa.Double(), nullable=True),
    sa.Column('limit_value', sa.Double(), nullable=True),
    sa.Column('unit', sa.String(length=16), nullable=True),
    sa.Column('message_zh', sa.Text(), nullable=False),
    sa.Column('message_en', sa.Text(), nullable=False),
    sa.Column('evidence', geoalchemy2.types.Geometry(srid=SRID, dimension=2, from_text='ST_GeomFromEWKT', name='geometry', spatial_index=False), nullable=True),
    sa.Column('layer_version_ids', sa.ARRAY(sa.Integer()), nullable=False),
    sa.Column('overrides_result_id', sa.Integer(), nullable=True),
    sa.Column('override_reason', sa.Text(), nullable=True),
    sa.Column('overridden_by_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("outcome IN ('pass', 'fail', 'warn', 'no_data', 'not_applicable')", name='ck_check_results_outcome'),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['check_run_id'], ['check_runs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], ),
    sa.ForeignKeyConstraint(['overridden_by_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['overrides_result_id'], ['check_results.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('idx_check_results_evidence', 'check_results', ['evidence'], unique=False, postgresql_using='gist')
    op.create_index(op.f('ix_check_results_check_run_id'), 'check_results', ['check_run_id'], unique=False)
    op.create_table('clock_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stage_instance_id', sa.Integer(), nullable=False),
    sa.Column('review_task_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('on', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('stop_kind', sa.String(length=32), nullable=True),
    sa.Column('days', sa.Integer(), nullable=True),
    sa.Column('approved_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('received', 'accepted', 'stop', 'resume', 'extension', 'decided', 'deemed')", name='ck_clock_events_kind'),
    sa.ForeignKeyConstraint(['approved_by_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['review_task_id'], ['review_tasks.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stage_instance_id'], ['stage_instances.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_clock_events_review_task_id'), 'clock_events', ['review_task_id'], unique=False)
    op.create_index(op.f('ix_clock_events_stage_instance_id'), 'clock_events', ['stage_instance_id'], unique=False)

    op.create_foreign_key('fk_layers_current_version', 'layers', 'layer_versions', ['current_version_id'], ['id'])

def downgrade() -> None:
    op.drop_constraint('fk_layers_current_version', 'layers', type_='foreignkey')
    op.drop_index(op.f('ix_clock_events_stage_instance_id'), table_name='clock_events')
    op.drop_index(op.f('ix_clock_events_review_task_id'), table_name='clock_events')
    op.drop_table('clock_events')
    op.drop_index(op.f('ix_check_results_check_run_id'), table_name='check_results')
    op.drop_index('idx_check_results_evidence', table_name='check_results', postgresql_using='gist')
    op.drop_table('check_results')
    op.drop_table('review_tasks')
    op.drop_index(op.f('ix_correction_notices_stage_instance_id'), table_name='correction_notices')
    op.drop_table('correction_notices')
    op.drop_index(op.f('ix_check_runs_project_id'), table_name='check_runs')
    op.drop_table('check_runs')
    op.drop_table('stage_instances')
    op.drop_table('project_parcels')
    op.drop_index('ix_events_subject', table_name='events')
    op.drop_index(op.f('ix_events_project_id'), table_name='events')
    op.drop_table('events')
    op.drop_index(op.f('ix_buildings_project_id'), table_name='buildings')
    op.drop_index('idx_buildings_geom', table_name='buildings', postgresql_using='gist')
    op.drop_table('buildings')
    op.drop_table('user_roles')
    op.drop_table('projects')
    op.drop_table('layer_versions')
    op.drop_index('ix_layer_features_live', table_name='layer_features', postgresql_where=sa.text('valid_to IS NULL'))
    op.drop_index('ix_layer_features_key', table_name='layer_features')
    op.drop_index('idx_layer_features_geom', table_name='layer_features', postgresql_using='gist')
    op.drop_table('layer_features')
    op.drop_table('users')
    op.drop_index('idx_layers_coverage', table_name='layers', postgresql_using='gist')
    op.drop_table('layers')
    op.drop_index('idx_parcels_geom', table_name='parcels', postgresql_using='gist')
    op.drop_table('parcels')
    op.drop_table('departments')
