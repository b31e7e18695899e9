"""A job has parties (a role and a table each, and the grant over that table) instead of exactly two
tables; its parameters, caller and public result are kept. Existing jobs become a consumer and a provider."""

import django.db.models.deletion
from django.db import migrations, models


def parties_from_tables(apps, schema_editor):
    Job = apps.get_model("compute", "Job")
    JobParty = apps.get_model("compute", "JobParty")
    for job in Job.objects.all().iterator():
        JobParty.objects.bulk_create([
            JobParty(job=job, position=0, role="consumer", table_id=job.consumer_table_id),
            JobParty(job=job, position=1, role="provider", table_id=job.provider_table_id, grant_id=job.grant_id),
        ])
        if job.result_cardinality is not None:
            job.result = {"cardinality": job.result_cardinality}
            job.save(update_fields=["result"])


class Migration(migrations.Migration):

    dependencies = [
        ('compute', '0002_nodes_hold_their_keys'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='caller',
            field=models.CharField(choices=[('quote', "A quote's measurement"), ('order', "An order's run"), ('other', 'Other')], default='other', max_length=16),
        ),
        migrations.AddField(
            model_name='job',
            name='params',
            field=models.JSONField(blank=True, default=dict, help_text="The protocol's parameters, as it checked them."),
        ),
        migrations.AddField(
            model_name='job',
            name='result',
            field=models.JSONField(blank=True, default=dict, help_text='What the protocol makes public of its result.'),
        ),
        migrations.AlterField(
            model_name='job',
            name='protocol',
            field=models.CharField(help_text='A name in the protocol registry.', max_length=32),
        ),
        migrations.CreateModel(
            name='JobParty',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('position', models.PositiveSmallIntegerField()),
                ('role', models.CharField(max_length=32)),
                ('grant_id', models.CharField(blank=True, max_length=66)),
                ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='parties', to='compute.job')),
                ('table', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='compute.storedtable')),
            ],
            options={
                'ordering': ['job', 'position'],
                'constraints': [models.UniqueConstraint(fields=('job', 'position'), name='job_party_position_once')],
            },
        ),
        migrations.RunPython(parties_from_tables, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name='job',
            name='consumer_table',
        ),
        migrations.RemoveField(
            model_name='job',
            name='grant_id',
        ),
        migrations.RemoveField(
            model_name='job',
            name='provider_table',
        ),
    ]
