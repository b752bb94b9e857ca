"""``python -m esc_basicsr.benchmark``: paper MAC/parameter counts and a tiny CPU run."""
from __future__ import annotations

import json

import pytest
import torch

import esc_basicsr  # noqa: F401
from esc_basicsr.archs import build
from esc_basicsr.benchmark import main
from esc_basicsr.tools.benchmark_plan import lr_size, make_entries, parse_basicsr_arch
from esc_basicsr.tools.loading import build_network
from esc_basicsr.tools.profiling import count_macs, count_params

TINY_ESC = ('{"dim": 16, "pdim": 8, "kernel_size": 13, "n_blocks": 1, "conv_blocks": 1, "window_size": 8, '
            '"num_heads": 2}')
TINY_EDSR = '{"num_feat": 8, "num_block": 1}'


def test_esc_x2_macs_match_the_paper():
    """Paper Table 2: 592.0 G MACs for ESC x2 at a 1280x720 output, counted on the meta device."""
    with torch.device('meta'):
        model = build('esc', 2)
    macs = count_macs(model, (1, 3, 360, 640))
    assert abs(macs / 592.0e9 - 1) < 0.01, macs


@pytest.mark.parametrize('name,params', [('esc', 946_728), ('esc_light', 603_600), ('esc_fp', 523_675)])
def test_parameters_match_the_paper(name, params):
    with torch.device('meta'):
        assert count_params(build(name, 2)) == params


def test_macs_of_every_backend_are_the_same():
    counts = set()
    for attn in ('naive', 'sdpa', 'flex'):
        with torch.device('meta'):
            counts.add(count_macs(build('esc_light', 2, attn_type=attn), (1, 3, 40, 72)))
    assert len(counts) == 1


def test_sizes_and_arguments():
    assert lr_size(None, (720, 1280), 2) == (360, 640)  # the output is HxW, as --lr-size
    assert lr_size(None, (720, 1280), 3) == (240, 427)
    assert lr_size(None, (720, 1280), 4) == (180, 320)
    assert lr_size((176, 320), (720, 1280), 2) == (176, 320)
    assert parse_basicsr_arch('EDSR:{"num_feat": 8}') == ('EDSR', {'num_feat': 8})
    with pytest.raises(ValueError, match='JSON'):
        parse_basicsr_arch('EDSR:{num_feat: 8}')
    entries, _ = make_entries(['esc', 'swinir_light'], ['EDSR'], ['naive', 'sdpa'], 2)
    assert [e.label for e in entries] == ['esc[naive]', 'esc[sdpa]', 'swinir_light', 'EDSR']
    assert entries[2].network_g['upscale'] == 2 and entries[3].network_g['num_in_ch'] == 3


def test_isolated_run_writes_table_json_csv_plot(tmp_path, capsys):
    out = tmp_path / 'bench'
    rc = main(['--device', 'cpu', '--threads', '1', '--lr-size', '12x20', '--scale', '2', '--models',
               '--basicsr-arch', f'ESC:{TINY_ESC}', '--basicsr-arch', f'EDSR:{TINY_EDSR}', '--baseline', 'EDSR',
               '--warmup', '1', '--repeats', '2', '--json', f'{out}.json', '--csv', f'{out}.csv',
               '--plot', f'{out}.png'])
    table = capsys.readouterr().out
    assert rc == 0, table
    assert '| ESC | sdpa |' in table and '| EDSR | - |' in table and 'time ratio vs EDSR' in table
    data = json.loads((tmp_path / 'bench.json').read_text())
    assert data['config']['lr_size'] == [12, 20] and data['config']['out_size'] == [24, 40]
    esc, edsr = data['results']
    assert esc['params'] == count_params(build_network(dict(json.loads(TINY_ESC), type='ESC', upscaling_factor=2)))
    assert esc['latency_ms'] > 0 and len(esc['latencies_ms']) == 2 and esc['mem_added_mb'] >= 0
    assert esc['threads'] == 1 and esc['macs'] > edsr['macs'] > 0
    assert edsr['ratio'] == 1.0 and esc['ratio'] == pytest.approx(esc['latency_ms'] / edsr['latency_ms'])
    assert (tmp_path / 'bench.csv').read_text().startswith('label,arch,attn')
    assert (tmp_path / 'bench.png').stat().st_size > 1000


def test_issue_2_command_line(capsys):
    """The CPU comparison of issue 2 (here at a tiny size and in-process, for speed)."""
    rc = main(['--device', 'cpu', '--threads', '2', '--lr-size', '16x24', '--scale', '2', '--models', 'esc',
               'swinir_light', '--baseline', 'swinir_light', '--no-isolate', '--warmup', '0', '--repeats', '1'])
    table = capsys.readouterr().out
    assert rc == 0, table
    lines = [[cell.strip() for cell in line.strip(' |').split('|')] for line in table.splitlines()
             if line.startswith('| ')]
    head = lines[0]
    rows = {cells[0]: cells for cells in lines[1:]}
    assert set(rows) >= {'esc', 'swinir_light'}
    # the baseline's time ratio is 1 (its memory ratio is '-' when the in-process run added no memory)
    assert rows['swinir_light'][head.index('time ratio vs swinir_light')] == '1.00'
    assert '946.7' in rows['esc']


def test_bad_requests_are_refused(capsys):
    assert main(['--device', 'cpu', '--models', 'nope', '--no-timing']) == 2
    assert 'unknown model' in capsys.readouterr().err
    assert main(['--device', 'cpu', '--models', 'esc', '--baseline', 'edsr', '--no-timing']) == 2
    assert 'not one of the rows' in capsys.readouterr().err
    assert main(['--device', 'cpu', '--fp16', '--no-timing']) == 2


def test_bad_environment_override_is_one_refusal(capsys, monkeypatch, tmp_path):
    """Issue 27: ESC_BASICSR_ATTN=bogus was a failed row per model (exit 1) that never named the variable."""
    from esc_basicsr.layers import config

    monkeypatch.setenv(config.ATTN_ENV, 'bogus')
    try:
        assert main(['--device', 'cpu', '--models', 'esc', '--no-timing', '--json', str(tmp_path / 'r.json')]) == 2
    finally:
        monkeypatch.delenv(config.ATTN_ENV)
        config.attn_override.cache_clear()
    assert capsys.readouterr().err.strip() == ("error: ESC_BASICSR_ATTN='bogus': expected one of auto, naive, sdpa, "
                                               "flex")
    assert not (tmp_path / 'r.json').exists()


def test_rounds_interleave_isolated_runs(tmp_path, capsys):
    """--rounds repeats every model's isolated run round-robin and reports the median per model."""
    rc = main(['--device', 'cpu', '--threads', '1', '--lr-size', '8x8', '--scale', '2', '--models',
               '--basicsr-arch', f'ESC:{TINY_ESC}', '--warmup', '0', '--repeats', '1', '--rounds', '2',
               '--no-macs', '--json', str(tmp_path / 'r.json')])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert 'round 2/2' in err
    data = json.loads((tmp_path / 'r.json').read_text())
    (esc,) = data['results']
    assert data['config']['rounds'] == 2 and len(esc['rounds_latency_ms']) == 2
    rounds = sorted(esc['rounds_latency_ms'])
    assert esc['latency_ms'] == pytest.approx(rounds[0] / 2 + rounds[1] / 2)


def test_training_step_benchmark(tmp_path, capsys):
    """--train: one forward/backward/AdamW iteration per row, time and memory, ratio to a baseline."""
    rc = main(['--train', '--device', 'cpu', '--threads', '1', '--batch-size', '2', '--patch', '12', '--scale', '2',
               '--models', '--basicsr-arch', f'ESC:{TINY_ESC}', '--basicsr-arch', f'EDSR:{TINY_EDSR}',
               '--baseline', 'EDSR', '--no-isolate', '--warmup', '0', '--repeats', '2',
               '--json', str(tmp_path / 't.json')])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert 'training step x2: batch 2 of 12x12 LR patches' in out and 'images/s' in out
    data = json.loads((tmp_path / 't.json').read_text())
    assert data['config']['mode'] == 'train' and data['config']['batch_size'] == 2
    esc, edsr = data['results']
    assert esc['attn'] == 'sdpa' and len(esc['steps_ms']) == 2 and 'macs' not in esc
    assert esc['images_per_s'] == pytest.approx(2 / (esc['step_ms'] / 1000))
    assert edsr['ratio'] == 1.0 and esc['ratio'] == pytest.approx(esc['step_ms'] / edsr['step_ms'])


def test_training_step_updates_the_weights():
    from esc_basicsr.tools.profiling import measure_train_step

    model = build_network(dict(json.loads(TINY_ESC), type='ESC', upscaling_factor=2))
    before = [p.detach().clone() for p in model.parameters()]
    row = measure_train_step(model, torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16), warmup=0, repeats=1)
    assert row['step_ms'] > 0 and row['mem_peak_mb'] > 0
    changed = [not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters())]
    assert all(changed), 'every parameter is updated by the AdamW step'


def test_training_benchmark_refuses_no_timing(capsys):
    assert main(['--train', '--device', 'cpu', '--models', 'esc', '--no-timing']) == 2
    assert '--no-timing' in capsys.readouterr().err


def test_speed_settings_reach_every_row(tmp_path, capsys):
    """The speed settings in one isolated row (a fresh process: the environment settings stay there): compiled
    (aot_eager on the CPU), low-rank bias, channels-last, FlexAttention kernel options; first-call time reported."""
    rc = main(['--device', 'cpu', '--threads', '1', '--lr-size', '12x20', '--scale', '2', '--models',
               '--basicsr-arch', f'ESC:{TINY_ESC}', '--warmup', '1', '--repeats', '1', '--no-macs',
               '--compile', '--compile-backend', 'aot_eager', '--low-rank-bias', 'rank:8', '--channels-last',
               '--flex-kernel-options', '{"num_warps": 2}', '--json', str(tmp_path / 's.json')])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert 'compile, channels-last, low-rank bias rank 8, flex {"num_warps": 2}' in out and 'first call (s)' in out
    assert 'note: ESC: low-rank bias: ranks 8 of 64' in out
    (row,) = json.loads((tmp_path / 's.json').read_text())['results']
    assert row['attn'] == 'sdpa' and row['first_call_ms'] > 0 and row['settings'].startswith('compile')


def test_autocast_tf32_and_refusals(tmp_path, capsys):
    rc = main(['--device', 'cpu', '--threads', '1', '--lr-size', '12x20', '--scale', '2', '--models',
               '--basicsr-arch', f'ESC:{TINY_ESC}', '--no-isolate', '--warmup', '0', '--repeats', '1', '--no-macs',
               '--bf16', '--autocast', '--tf32', 'off', '--json', str(tmp_path / 'a.json')])
    assert rc == 0, capsys.readouterr()
    assert 'bf16 autocast' in capsys.readouterr().out
    (row,) = json.loads((tmp_path / 'a.json').read_text())['results']
    assert row['autocast'] and row['tf32'] == 'off' and not row['tf32_matmul'] and not row['tf32_cudnn']
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default, changed by --tf32 off in this process
    assert main(['--device', 'cpu', '--models', 'esc', '--cuda-graphs']) == 2
    assert '--cuda-graphs needs a CUDA device' in capsys.readouterr().err
    assert main(['--device', 'cpu', '--models', 'esc', '--autocast']) == 2
    assert '--autocast' in capsys.readouterr().err
    assert main(['--device', 'cpu', '--models', 'esc', '--train', '--low-rank-bias', '1e-3']) == 2
    assert 'not for --train' in capsys.readouterr().err
