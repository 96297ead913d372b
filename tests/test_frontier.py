"""msconv_plugin.frontier: the plain line, distances to it, seed summaries, and a real tiny family."""
import glob
import json
import math
import os
import os.path as osp
import shutil

import cv2
import pytest
import yaml

from msconv_plugin import frontier, study
from tests.test_quality_study import REPO, needs_shared, tiny_plain_options


def test_interpolation_is_linear_in_log_cost_and_never_extrapolates():
    line = [(4.0, 30.0), (1.0, 28.0), (2.0, 29.0)]  # unsorted on purpose
    assert frontier.interpolate(line, 1.0) == 28.0 and frontier.interpolate(line, 4.0) == 30.0
    assert frontier.interpolate(line, 2.0) == 29.0
    assert frontier.interpolate(line, math.sqrt(2)) == pytest.approx(28.5)  # half-way in log cost
    assert frontier.interpolate(line, 3.0) == pytest.approx(29 + math.log(1.5) / math.log(2))
    # within 1% beyond an end: that end's PSNR (a width matched to the widest plain network lands a hair above it)
    assert frontier.interpolate(line, 0.995) == 28.0 and frontier.interpolate(line, 4.03) == 30.0
    assert frontier.interpolate(line, 0.98) is None and frontier.interpolate(line, 4.05) is None
    assert frontier.interpolate(line, 4.03, tolerance=0) is None
    assert frontier.interpolate([], 1.0) is None


def test_dominated_plain_widths_are_left_off_the_line():
    """A width that is costlier and no better than another (48 channels running faster than 46 on a CPU) is not on
    the frontier: the line joins 32 → 48 → 64 in latency, and stays level beyond its costliest frontier point."""
    line = [(1.0, 28.0), (3.0, 29.0), (2.0, 29.5), (4.0, 30.0)]  # (ms, dB): 3 ms is slower than 2 ms and worse
    assert frontier.frontier_points(line) == [(1.0, 28.0), (2.0, 29.5), (4.0, 30.0)]
    assert frontier.interpolate(line, 2.0) == 29.5
    assert frontier.interpolate(line, 3.0) == pytest.approx(29.5 + 0.5 * math.log(1.5) / math.log(2))
    assert frontier.frontier_points([(1.0, 28.0), (1.0, 28.5), (2.0, 28.2)]) == [(1.0, 28.5)]  # equal cost: the best
    dominated_end = [(1.0, 28.0), (2.0, 29.0), (4.0, 28.9)]  # the costliest width is worse than a cheaper one
    assert frontier.interpolate(dominated_end, 3.0) == 29.0 and frontier.interpolate(dominated_end, 4.0) == 29.0
    assert frontier.interpolate(dominated_end, 4.1) is None  # still no extrapolation beyond the measured range


def test_seed_summary():
    assert frontier.seed_summary([1.0, 3.0, 2.0]) == dict(mean=2.0, min=1.0, max=3.0, spread=2.0, n=3)
    assert frontier.seed_summary([None, 5.0]) == dict(mean=5.0, min=5.0, max=5.0, spread=0.0, n=1)
    assert frontier.seed_summary([None]) is None


def member(key, seed, n, width, macs, psnr, latency):
    return dict(key=key, seed=seed, n_scales=n, width=width, params=width * 10, macs=macs, latency_ms=latency,
                metrics={'A': dict(psnr=psnr), 'B': dict(psnr=psnr + 1)})


def test_distances_to_a_hand_made_frontier():
    """Plain widths at 1 and 4 G (30 and 32 dB, 10 and 40 ms); an MS³ network at 2 G and 20 ms whose two seeds
    reach 31.5 and 31.7 dB: the line gives 31 dB at 2 G (half-way in log cost) and 31 dB at 20 ms."""
    members = [member('plain f32', s, 1, 32, 1e9, 30.0 + d, {1: 10.0}) for s, d in ((0, -0.1), (1, 0.1))]
    members += [member('plain f64', s, 1, 64, 4e9, 32.0, {1: 40.0}) for s in (0, 1)]
    members += [member('n2 f64', s, 2, 64, 2e9, p, {1: 20.0}) for s, p in ((0, 31.5), (1, 31.7))]
    members += [member('n2 f90', 0, 2, 90, 5e9, 33.0, {1: 45.0})]  # costlier than the widest plain network
    configs = frontier.frontier_distances(frontier.aggregate(members, ['A', 'B']), ['A', 'B'], threads=[1])
    by_key = {c['key']: c for c in configs}
    assert [c['key'] for c in configs] == ['plain f32', 'plain f64', 'n2 f64', 'n2 f90']
    assert by_key['plain f32']['psnr']['A'] == pytest.approx(dict(mean=30.0, min=29.9, max=30.1, spread=0.2, n=2))
    assert by_key['plain f32']['psnr']['mean']['mean'] == pytest.approx(30.5)  # mean of A and B
    n2 = by_key['n2 f64']
    assert n2['delta_macs']['A'] == pytest.approx(dict(mean=0.6, min=0.5, max=0.7, spread=0.2, n=2))
    assert n2['delta_macs']['mean']['mean'] == pytest.approx(0.6)
    assert n2['delta_latency'][1]['A'] == pytest.approx(dict(mean=0.6, min=0.5, max=0.7, spread=0.2, n=2))
    assert by_key['n2 f90']['delta_macs']['A'] is None  # outside the plain line: no extrapolation
    assert 'delta_macs' not in by_key['plain f64']


def test_a_family_without_plain_members_is_tabulated():
    """--widths with no width (MS³ members only, e.g. trained beside a plain run elsewhere): no line, no distance."""
    result = _frontier_result(1000, {}, {64: (30.8, 31.0)})
    result.update(complexity_input='1x3x128x128', command='x', task='sr', scale=2, ms3_options={},
                  latency=dict(input='1x3x128x128', threads=[1], repeats=1, machine='m', torch='t'))
    result['members'] = []
    table = frontier.markdown(result)
    assert '| MS³ n=2, 64 ch |' in table and '(100%)' in table and 'outside' in table


def test_family_members_and_names():
    plain = dict(name='EDSR_x2_recipe', manual_seed=0, network_g=dict(type='EDSR', num_feat=64, upscale=2))
    opts = frontier.family_options(plain, [32, 64], {2: [90]}, [0, 1], dict(cross_scale_init=0), ms3_tag='c0')
    assert [o['name'] for o in opts] == [
        'EDSR_x2_recipe_f32-s0', 'EDSR_x2_recipe_f64-s0', 'MS3EDSR_x2_recipe_n2-c0_f90-s0',
        'EDSR_x2_recipe_f32-s1', 'EDSR_x2_recipe_f64-s1', 'MS3EDSR_x2_recipe_n2-c0_f90-s1']
    assert [(o['network_g']['num_feat'], o['manual_seed']) for o in opts] == [
        (32, 0), (64, 0), (90, 0), (32, 1), (64, 1), (90, 1)]
    ms3 = opts[2]['network_g']
    assert ms3['type'] == 'MS3EDSR' and ms3['n_scales'] == 2 and ms3['cross_scale_init'] == 0
    assert [frontier.config_key(o) for o in opts[:3]] == ['plain f32', 'plain f64', 'n2 f90']
    assert plain == dict(name='EDSR_x2_recipe', manual_seed=0, network_g=dict(type='EDSR', num_feat=64, upscale=2))


@pytest.mark.parametrize('grow', [32, None])
def test_rrdbnet_members_narrow_the_growth_with_the_width(grow):
    net = dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, scale=2, num_feat=64, num_block=4)
    if grow:
        net['num_grow_ch'] = grow  # left out: the constructor's default, 32, written out
    plain = dict(name='RRDBNet_x2_recipe', manual_seed=0, network_g=net)
    opts = frontier.family_options(plain, [32, 46, 64], {2: [64, 90]}, [0])
    assert [(o['network_g']['type'], o['network_g']['num_feat'], o['network_g']['num_grow_ch']) for o in opts] == [
        ('RRDBNet', 32, 16), ('RRDBNet', 46, 23), ('RRDBNet', 64, 32), ('MS3RRDBNet', 64, 32), ('MS3RRDBNet', 90, 45)]
    # the same narrowing as the benchmark's plain network of equal multiply-adds
    from msconv_plugin.complexity import narrowed
    assert opts[1]['network_g'] == dict(narrowed('RRDBNet', net if grow else dict(net, num_grow_ch=32), 46))


def test_rrdbnet_x2_families_are_tested_on_images_both_of_their_networks_take():
    def dataset(net_type, scale):
        train = dict(type='PairedImageDataset')
        train_opt = dict(scale=scale, network_g=dict(type=net_type), datasets=dict(train=train))
        return study.test_dataset_options(train_opt, 'Set14', 'bench')

    # pixel-unshuffle by 2 at x2: HR cropped to a multiple of 4, for the plain network and its conversion alike
    assert dataset('RRDBNet', 2)['mod_crop'] == dataset('MS3RRDBNet', 2)['mod_crop'] == 4
    assert 'mod_crop' not in dataset('RRDBNet', 4) and 'mod_crop' not in dataset('EDSR', 2)


@pytest.mark.parametrize('text', ['2', '1:64', '2:', 'x:64', '2:6a'])
def test_bad_ms3_widths_are_refused(text):
    with pytest.raises(ValueError, match='--ms3'):
        frontier.parse_ms3_widths([text])


@pytest.fixture
def family_name(tmp_path):
    """A recipe name unique to this test; what BasicSR wrote for its members in the repository is removed after."""
    name = f'EDSR_tinyfrontier_{tmp_path.name}'
    yield name
    for pattern in (f'experiments/*{name}*', f'experiments/quality_study/*{name}*', f'results/*{name}*'):
        for path in glob.glob(osp.join(REPO, pattern)):
            shutil.rmtree(path) if osp.isdir(path) else os.remove(path)


@pytest.mark.slow
@needs_shared
def test_a_tiny_family_is_trained_tested_timed_and_placed_against_the_plain_line(tmp_path, family_name):
    """Two plain widths and one MS³ width, two seeds each, 4 iterations, through BasicSR's entry points."""
    opt_path = tiny_plain_options(tmp_path, family_name)
    out = tmp_path / 'out'
    argv = ['--opt', opt_path, '--widths', '8', '16', '--ms3', '2:16', '--seeds', '0', '1', '--sets', 'Set5',
            '--ms3-options', 'cross_scale_init=0', '--latency-size', '16', '--latency-threads', '1',
            '--latency-repeats', '1', '--out', str(out)]
    result = frontier.main(argv)
    assert [m['name'] for m in result['members']] == [
        f'{family_name}_f8-s0', f'{family_name}_f16-s0', f'MS3{family_name}_n2_f16-s0',
        f'{family_name}_f8-s1', f'{family_name}_f16-s1', f'MS3{family_name}_n2_f16-s1']
    for m in result['members']:
        log = open(glob.glob(osp.join(REPO, 'experiments', m['name'], 'train_*.log'))[0]).read()
        assert 'iter:       4,' in log and f"manual_seed: {m['seed']}" in log
        assert 10 < m['metrics']['Set5']['psnr'] < 50 and m['latency_ms'][1] > 0
    assert result['members'][2]['network_g']['cross_scale_init'] == 0
    configs = {c['key']: c for c in result['configs']}
    assert list(configs) == ['plain f8', 'plain f16', 'n2 f16']
    n2 = configs['n2 f16']
    per_seed = [m['metrics']['Set5']['psnr'] for m in result['members'] if m['key'] == 'n2 f16']
    assert n2['psnr']['Set5']['mean'] == pytest.approx(sum(per_seed) / 2) and n2['psnr']['Set5']['n'] == 2
    assert configs['plain f8']['macs'] < n2['macs'] < configs['plain f16']['macs']  # inside the plain line
    line = [(configs[k]['macs'], configs[k]['psnr']['Set5']['mean']) for k in ('plain f8', 'plain f16')]
    expected = [p - frontier.interpolate(line, n2['macs']) for p in per_seed]
    assert n2['delta_macs']['Set5']['mean'] == pytest.approx(sum(expected) / 2)
    assert n2['delta_macs']['Set5']['min'] == pytest.approx(min(expected))
    assert set(n2['delta_latency'][1]) == {'Set5', 'mean'}

    saved = json.loads((out / f'{family_name}_frontier.json').read_text())
    assert saved['configs'][2]['delta_macs'] == json.loads(json.dumps(n2['delta_macs']))
    assert [m['seed'] for m in saved['members']] == [0, 0, 0, 1, 1, 1]
    table = (out / f'{family_name}_frontier.md').read_text()
    assert '| MS³ n=2, 16 ch |' in table and 'python -m msconv_plugin.frontier --opt' in table
    png = cv2.imread(str(out / f'{family_name}_frontier.png'))
    assert png is not None and png.shape[1] > 300

    # Run again with one more width while nothing may train: the trained members are reused, the new one listed.
    again = frontier.main(argv[:4] + ['24'] + argv[4:] + ['--skip-untrained'])
    assert again['untrained'] == [f'{family_name}_f24-s0', f'{family_name}_f24-s1']
    assert [c['key'] for c in again['configs']] == ['plain f8', 'plain f16', 'n2 f16']
    assert again['configs'][2]['psnr'] == json.loads(json.dumps(n2['psnr']))
    assert 'training not finished' in (out / f'{family_name}_frontier.md').read_text()


def test_a_changed_recipe_needs_its_own_name(tmp_path):
    with pytest.raises(ValueError, match='--name'):
        frontier.run(str(tmp_path / 'x.yml'), [8], {}, [0], overrides={'train.optim_g.lr': 1e-3})


def _frontier_result(iterations, plain, ms3, seeds=(0, 1)):
    """A frontier result as ``frontier.run`` returns it, from {width: PSNR per seed} of the plain and n=2 networks
    (multiply-adds: width² M)."""
    members = [member(f'plain f{w}', s, 1, w, w * w * 1e6, p, {1: 1.0}) for w, ps in plain.items()
               for s, p in zip(seeds, ps)]
    members += [member(f'n2 f{w}', s, 2, w, w * w * 0.5e6, p, {1: 1.0}) for w, ps in ms3.items()
                for s, p in zip(seeds, ps)]
    configs = frontier.frontier_distances(frontier.aggregate(members, ['A', 'B']), ['A', 'B'], threads=[1])
    budget = dict(iterations=iterations, batch=8, gt_size=48, lr=4e-4, scheduler='Cosine', tested_weights='params',
                  dataset='SunHays80')
    return dict(study=f'x_{iterations}', budget=budget, sets=['A', 'B'], seeds=list(seeds), configs=configs,
                ms3_options={'cross_scale_init': 0}, task='sr', scale=2, interaction='adjacent',
                members=[dict(m, network_g={'type': 'EDSR'}) for m in members])


def test_summary_keeps_noise_levels_apart(tmp_path):
    """Two denoising frontiers of one network and budget at different noise levels are two tasks: each gets its own
    closest network, labelled with its level, in the order of the levels' values (σ=100 after σ=50, not before
    σ=25 as text would sort it). A result written before the level was recorded reads it from its option file (with
    its recipe overrides)."""
    paths = []
    for sigma, ms3 in ((100, (30.6, 30.8)), (25, (30.7, 31.1)), (50, (30.5, 30.5))):
        result = dict(_frontier_result(1000, {32: (30.0, 30.0), 64: (32.0, 32.0)}, {64: ms3}), task='denoise',
                      scale=1, degradation=f'σ={sigma}')
        paths.append(str(tmp_path / f'sigma{sigma}_frontier.json'))
        with open(paths[-1], 'w') as f:
            json.dump(result, f)
    summary = frontier.summary_result(paths, 'summary')
    labels = [row.split(' | ')[0] for row in frontier.closest_markdown(summary).splitlines()[2:]]
    assert labels == ['| EDSR denoise σ=25', '| EDSR denoise σ=50', '| EDSR denoise σ=100']

    recipe = 'options/train/SunHays80/frontier/train_EDSR_denoise_sigma25_SunHays80_1k.yml'
    assert frontier.recorded_degradation({'plain_options': recipe}) == 'σ=25'
    assert frontier.recorded_degradation({'plain_options': recipe,
                                          'recipe_overrides': {'datasets.train.sigma': 50}}) == 'σ=50'
    assert frontier.recorded_degradation({'plain_options': 'options/no_such_file.yml'}) == ''
    assert frontier.recorded_degradation({'degradation': 'σ=15'}) == 'σ=15'
    blind = {'datasets': {'train': {'type': 'GaussianNoiseDataset', 'sigma_range': [15, 50]}}}
    assert study.degradation_of(blind) == 'σ=15–50'
    assert study.degradation_of({'datasets': {'train': {'type': 'PairedImageDataset'}}}) == ''


def test_learning_curve_of_hand_made_frontiers(tmp_path):
    """Two budgets of one family: PSNR and the distance to the plain line per budget; a network trained at one
    budget only shows '–' at the other; results of another recipe or noise level are refused."""
    paths = []
    for iterations, plain, ms3 in ((1000, {32: (30.0, 30.0), 64: (32.0, 32.0)}, {64: (30.8, 31.0)}),
                                   (3000, {32: (31.0, 31.0), 64: (33.0, 33.0)}, {64: (32.3, 32.1), 92: (33.5, 33.5)})):
        paths.append(tmp_path / f'{iterations}.json')
        paths[-1].write_text(json.dumps(_frontier_result(iterations, plain, ms3)))
    result = frontier.learning_curve_result([str(p) for p in reversed(paths)], 'curve')
    assert result['budgets'] == [1000, 3000] and result['seeds'] == {'1000': [0, 1], '3000': [0, 1]}
    assert result['tested_weights'] == {'1000': 'params', '3000': 'params'}
    n2 = result['curve']['n2 f64']  # at 2048 M multiply-adds: half-way (log) between 1024 M and 4096 M
    # mean of sets A and B (B = A + 1) per seed: 31.3 and 31.5 at 1k; the plain line there: 31.5
    assert n2['psnr']['1000'] == pytest.approx(dict(mean=31.4, min=31.3, max=31.5, spread=0.2, n=2))
    assert n2['delta_macs']['1000'] == pytest.approx(dict(mean=-0.1, min=-0.2, max=0.0, spread=0.2, n=2))
    assert n2['delta_macs']['3000'] == pytest.approx(dict(mean=0.2, min=0.1, max=0.3, spread=0.2, n=2))
    table = frontier.learning_curve_markdown(result)
    assert '| MS³ n=2, 64 ch | 2.05 G | 31.40 [31.30, 31.50] | 32.70 [32.60, 32.80] | -0.10 [-0.20, +0.00] | ' \
           '+0.20 [+0.10, +0.30] |' in table
    assert '| MS³ n=2, 92 ch | 4.23 G | – | 34.00 [34.00, 34.00] | – | outside |' in table  # not at 1k; beyond the line
    frontier.learning_curve_plot(result, str(tmp_path / 'curve.png'))
    assert (tmp_path / 'curve.png').stat().st_size > 0

    ema = _frontier_result(10000, {32: (31.0, 31.0)}, {})
    ema['budget']['tested_weights'] = 'params_ema'  # chosen by the budget: still the same family
    (tmp_path / 'ema.json').write_text(json.dumps(ema))
    longer = frontier.learning_curve_result([str(paths[0]), str(tmp_path / 'ema.json')], 'curve')
    assert longer['tested_weights'] == {'1000': 'params', '10000': 'params_ema'}
    assert '10,000: `params_ema`' in frontier.learning_curve_markdown(longer)

    spelled_out, left_out = (_frontier_result(it, {32: (31.0, 31.0)}, {64: (31.5, 31.5)}) for it in (10000, 3000))
    for result, options in ((spelled_out, dict(cross_scale_init=0, upsample='nearest', scope='trunk')),
                            (left_out, dict(cross_scale_init=0, scope='trunk'))):
        result['ms3_options'] = options
        for m in result['members']:
            m['network_g'] = dict(type='MS3EDSR' if m['n_scales'] > 1 else 'EDSR')
    (tmp_path / 'spelled_out.json').write_text(json.dumps(spelled_out))
    (tmp_path / 'left_out.json').write_text(json.dumps(left_out))
    # An unchanged default (upsample: nearest) written out or left out is one network; a default that has changed
    # (scope) left out is not known to be the one written out.
    joined = frontier.learning_curve_result([str(tmp_path / 'spelled_out.json'), str(tmp_path / 'left_out.json')], 'c')
    assert joined['budgets'] == [3000, 10000] and joined['ms3_options'] == dict(cross_scale_init=0, scope='trunk')
    left_out['ms3_options'] = dict(cross_scale_init=0)
    (tmp_path / 'left_out.json').write_text(json.dumps(left_out))
    with pytest.raises(ValueError, match=r'left_out\.json is not of the same family'):
        frontier.learning_curve_result([str(tmp_path / 'spelled_out.json'), str(tmp_path / 'left_out.json')], 'c')

    other = _frontier_result(10000, {32: (31.0, 31.0)}, {})
    other['budget']['lr'] = 2e-4
    (tmp_path / 'other.json').write_text(json.dumps(other))
    with pytest.raises(ValueError, match=r'other\.json is not of the same family as .*1000\.json'):
        frontier.learning_curve_result([str(paths[0]), str(tmp_path / 'other.json')], 'curve')

    # The budget does not hold the noise level: two denoising results at different levels are two families.
    for sigma, iterations in ((100, 1000), (50, 3000)):
        noisy = dict(_frontier_result(iterations, {32: (31.0, 31.0)}, {}), task='denoise', scale=1,
                     degradation=f'σ={sigma}')
        (tmp_path / f'sigma{sigma}.json').write_text(json.dumps(noisy))
    with pytest.raises(ValueError, match=r'sigma50\.json is not of the same family as .*sigma100\.json'):
        frontier.learning_curve_result([str(tmp_path / 'sigma100.json'), str(tmp_path / 'sigma50.json')], 'curve')


@needs_shared
def test_members_of_earlier_results_are_reused_not_trained(tmp_path, family_name):
    """--reuse: a family whose every member is in an earlier result JSON is tabulated from it with nothing trained or
    tested (its training data need not exist), every network timed again; a member of the same name trained with
    other options is refused with a message naming --reuse."""
    opt_path = tiny_plain_options(tmp_path, family_name)
    plain = frontier.load_options(opt_path)
    plain['datasets']['train']['dataroot_gt'] = str(tmp_path / 'gone')  # the data of a study trained elsewhere
    opt_path = tmp_path / 'plain.yml'
    opt_path.write_text(yaml.safe_dump(plain))
    opts = frontier.family_options(plain, [8, 16], {2: [16]}, [0, 1], dict(cross_scale_init=0))
    members = [dict(name=o['name'], n_scales=o['network_g'].get('n_scales', 1), network_g=o['network_g'],
                    budget=frontier.budget_of(o), params=1, macs=(1 + i % 3) * 1e6, key=frontier.config_key(o),
                    seed=o['manual_seed'], width=o['network_g']['num_feat'], latency_ms={'1': 999.0},
                    metrics={'Set5': dict(psnr=30.0 + i % 3 + o['manual_seed'] / 10)}) for i, o in enumerate(opts)]
    earlier = tmp_path / 'earlier.json'
    earlier.write_text(json.dumps(dict(members=members, command='python -m msconv_plugin.frontier --the-first-run')))
    argv = ['--opt', str(opt_path), '--widths', '8', '16', '--ms3', '2:16', '--seeds', '0', '1', '--sets', 'Set5',
            '--ms3-options', 'cross_scale_init=0', '--latency-size', '16', '--latency-threads', '1',
            '--latency-repeats', '1', '--out', str(tmp_path / 'out'), '--reuse', str(earlier)]
    result = frontier.main(argv)
    assert not glob.glob(osp.join(REPO, 'experiments', f'*{family_name}*'))  # nothing trained
    assert [m['metrics'] for m in result['members']] == [m['metrics'] for m in members]
    assert all(m['reused_from'].endswith('earlier.json') and m['latency_ms'][1] < 999 for m in result['members'])
    n2 = {c['key']: c for c in result['configs']}['n2 f16']
    assert n2['psnr']['Set5']['mean'] == pytest.approx(32.05)  # seeds 0 and 1: 32.0 and 32.1
    assert n2['delta_macs']['Set5'] is None  # 3 M: beyond the plain line (1 and 2 M)
    table = (tmp_path / 'out' / f'{family_name}_frontier.md').read_text()
    assert 'Metrics of 6 of the 6 trained networks taken from earlier results' in table
    assert '`python -m msconv_plugin.frontier --the-first-run`' in table  # the command that trained them
    # reused again, the first command is still the one named
    again = frontier.main(argv[:-1] + [str(tmp_path / 'out' / f'{family_name}_frontier.json')])
    assert again['reused'][0]['commands'] == ['python -m msconv_plugin.frontier --the-first-run']

    members[2]['network_g'] = dict(members[2]['network_g'], cross_scale_init=1)
    earlier.write_text(json.dumps(dict(members=members, command='python -m msconv_plugin.frontier --the-first-run')))
    refused = rf'--reuse: MS3{family_name}_n2_f16-s0 in .*earlier\.json differs .*network_g'
    with pytest.raises(ValueError, match=refused):
        frontier.main(argv)


def test_reuse_names_every_command_behind_the_reused_members(tmp_path):
    """A result that reused some members and trained others: both its own command and the reused ones are named;
    a result that only re-timed (every member reused) passes the reused commands on, not its own."""
    mixed = tmp_path / 'mixed.json'
    mixed.write_text(json.dumps(dict(
        command='frontier --trained-64-and-96',
        members=[dict(name='a-s0', reused_from='first.json'), dict(name='b-s0')],
        reused=[dict(path='first.json', commands=['frontier --trained-72'])])))
    retimed = tmp_path / 'retimed.json'
    retimed.write_text(json.dumps(dict(
        command='frontier --skip-untrained --reuse mixed.json',
        members=[dict(name='a-s0', reused_from='mixed.json'), dict(name='b-s0', reused_from='mixed.json')],
        reused=[dict(path='mixed.json', commands=['frontier --trained-72', 'frontier --trained-64-and-96'])])))
    first = tmp_path / 'first.json'
    first.write_text(json.dumps(dict(command='frontier --trained-72', members=[dict(name='a-s0')])))
    members, commands = frontier.earlier_members([str(mixed), str(retimed), str(first)])
    by_file = {osp.basename(path): c for path, c in commands.items()}
    assert by_file == {'mixed.json': ['frontier --trained-72', 'frontier --trained-64-and-96'],
                       'retimed.json': ['frontier --trained-72', 'frontier --trained-64-and-96'],
                       'first.json': ['frontier --trained-72']}
    assert members['b-s0'][1] == str(mixed)  # the first file that holds a member is the one it is taken from


def test_summary_of_hand_made_frontiers(tmp_path):
    """Every MS³ network of several studies, one row each: its distances to its own study's plain line, ordered by
    budget and recipe, then closest first; the target is counted on the mean over seeds, 'a seed above' on the best
    seed. Each row names the batch and patch size its study trained with."""
    near = _frontier_result(1000, {32: (30.0, 30.0), 64: (32.0, 32.0)}, {64: (30.7, 31.1)})  # -0.1 [-0.3, +0.1]
    far = _frontier_result(1000, {32: (30.0, 30.0), 64: (32.0, 32.0)}, {64: (30.5, 30.5), 92: (33.0, 33.0)})
    far['interaction'] = 'full'
    above = _frontier_result(3000, {32: (31.0, 31.0), 64: (33.0, 33.0)}, {64: (32.1, 32.3)})  # +0.2 [+0.1, +0.3]
    # The same budget on larger patches (as many pixels per batch): a recipe of its own, apart from near and far.
    patches = _frontier_result(1000, {32: (30.0, 30.0), 64: (32.0, 32.0)}, {64: (30.6, 30.6)})  # -0.4
    patches['budget'] = dict(patches['budget'], batch=2, gt_size=96)
    paths = []
    for name, result in (('far', far), ('above', above), ('near', near), ('patches', patches)):
        paths.append(str(tmp_path / f'{name}_frontier.json'))
        with open(paths[-1], 'w') as f:
            json.dump(result, f)
    summary = frontier.summary_result(paths, 'summary')
    rows = summary['rows']
    assert [(r['iterations'], osp.basename(r['source']), r['width']) for r in rows] == [
        (1000, 'patches_frontier.json', 64), (1000, 'near_frontier.json', 64), (1000, 'far_frontier.json', 64),
        (1000, 'far_frontier.json', 92), (3000, 'above_frontier.json', 64)]
    assert rows[1]['delta_macs'] == pytest.approx(dict(mean=-0.1, min=-0.3, max=0.1, spread=0.4, n=2))
    assert rows[2]['delta_macs']['mean'] == pytest.approx(-0.5) and rows[3]['delta_macs'] is None  # 92 ch: outside
    assert rows[1]['macs_share'] == pytest.approx(0.5) and rows[1]['widest_plain'] == 64
    assert rows[0]['delta_macs']['mean'] == pytest.approx(-0.4)
    assert [(r['batch'], r['gt_size']) for r in rows] == [(2, 96)] + [(8, 48)] * 4
    assert (summary['measured'], summary['reach_target'], summary['a_seed_above']) == (4, 1, 2)
    assert summary['threads'] == ['1'] and rows[4]['delta_latency']['1'] is not None

    table = frontier.summary_markdown(summary)
    assert '**1 of the 4 networks inside their plain line\'s range reach it; 2 have at least one seed above' in table
    assert ('| EDSR sr ×2 | 3,000, 0.0004, 8 × 48 | n=2, 64 ch (cross_scale_init=0) | 2.05 G (50% of 64 ch) | 2 | '
            '32.70 [32.60, 32.80] | +0.20 [+0.10, +0.30] |') in table
    assert '| 1,000, 0.0004, 8 × 48 | n=2, 92 ch (cross_scale_init=0, interaction=full) | 4.23 G (103% of 64 ch) | ' \
           '2 | 33.50 [33.50, 33.50] | ' \
           'outside | +1.00 [+1.00, +1.00] | [far_frontier](far_frontier.md) |' in table  # one latency for all
    assert '| EDSR sr ×2 | 1,000, 0.0004, 2 × 96 | n=2, 64 ch (cross_scale_init=0) | 2.05 G (50% of 64 ch) | 2 | ' \
           '31.10 [31.10, 31.10] | -0.40 [-0.40, -0.40] |' in table  # mean of sets A and B
    frontier.summary_plot(summary, str(tmp_path / 'summary.png'))
    assert cv2.imread(str(tmp_path / 'summary.png')) is not None

    # The command line: every frontier result in docs/quality by default, recorded as typed; a bad file is named.
    out = tmp_path / 'out'
    written = frontier.summary_main(paths[:1] + ['--name', 'mine', '--target', '0.2', '--out', str(out)])
    assert written['reach_target'] == 0 and written['command'].endswith(' --name mine --target 0.2')
    assert sorted(os.listdir(out)) == ['mine.json', 'mine.md', 'mine.png']
    (tmp_path / 'curve.json').write_text(json.dumps({'study': 'curve', 'curve': {}}))
    with pytest.raises(ValueError, match=r'curve\.json is not a frontier result'):
        frontier.summary_result([str(tmp_path / 'curve.json')], 'x')
    with pytest.raises(FileNotFoundError, match='No such frontier result: nowhere.json'):
        frontier.summary_main(['nowhere.json', '--out', str(out)])
    # Without files: the published studies of docs/quality, and the command says just that.
    published = frontier.summary_main(['--name', 'published', '--out', str(out)])
    assert published['command'] == 'python scripts/frontier_summary.py --name published'
    assert published['sources'] == sorted(published['sources']) and len(published['sources']) >= 2
    assert all(s.startswith('docs/quality/') and '_frontier' in s for s in published['sources'])
    assert published['measured'] == sum(r['delta_macs'] is not None for r in published['rows']) > 0


def test_summary_names_the_closest_network_per_task_and_budget(tmp_path):
    """Per task and budget, the MS³ network closest to the plain line among those with the most seeds (a lucky
    single seed does not stand in for two), with a verdict in words and what it gives against the full network."""
    near = _frontier_result(1000, {32: (30.0, 30.0), 64: (32.0, 32.0)}, {64: (30.7, 31.1)})  # -0.1 [-0.3, +0.1]
    far = _frontier_result(1000, {32: (30.0, 30.0), 64: (32.0, 32.0)}, {64: (30.5, 30.5)})  # -0.5 on both seeds
    lucky = _frontier_result(1000, {32: (30.0,), 64: (32.0,)}, {64: (31.5,)}, seeds=(0,))  # +0.5, one seed
    above = _frontier_result(3000, {32: (31.0, 31.0), 64: (33.0, 33.0)}, {64: (32.1, 32.3)})  # +0.2 [+0.1, +0.3]
    paths = []
    for name, result in (('near', near), ('far', far), ('lucky', lucky), ('above', above)):
        paths.append(str(tmp_path / f'{name}_frontier.json'))
        with open(paths[-1], 'w') as f:
            json.dump(result, f)
    summary = frontier.summary_result(paths, 'summary')
    closest = [summary['rows'][i] for i in summary['closest']]
    assert [(r['iterations'], osp.basename(r['source'])) for r in closest] == [
        (1000, 'near_frontier.json'), (3000, 'above_frontier.json')]
    assert closest[0]['widest_plain_psnr']['mean'] == pytest.approx(32.5)  # mean of sets A and B of plain f64

    assert frontier.verdict(closest[0]['delta_macs'], 0.1) == 'level (seeds on both sides of the line)'
    assert frontier.verdict(closest[1]['delta_macs'], 0.1) == 'above the line by the target (+0.10 dB)'
    assert frontier.verdict(closest[1]['delta_macs'], 0.3) == 'above the line on every seed'
    assert frontier.verdict(far['configs'][-1]['delta_macs']['mean'], 0.1) == 'below the line on every seed'
    assert frontier.verdict(lucky['configs'][-1]['delta_macs']['mean'], 0.1) == 'above the line (one seed)'
    one_seed = {'mean': 0.0, 'min': 0.0, 'max': 0.0, 'spread': 0.0, 'n': 1}
    assert frontier.verdict(one_seed, 0.1) == 'on the line (one seed)'
    assert frontier.verdict(dict(one_seed, mean=-0.01, min=-0.01, max=-0.01), 0.1) == 'below the line (one seed)'

    table = frontier.closest_markdown(summary)
    assert table in frontier.summary_markdown(summary)
    # n2 f64: 31.4 dB (mean of sets and seeds) against plain f64's 32.5, at half its mult-adds and the same latency
    # (every network takes 1 ms here, so at equal latency the line is the best plain network's PSNR)
    assert ('| EDSR sr ×2 | 1,000 (8 × 48) | n=2, 64 ch (lr=0.0004, cross_scale_init=0) | 2 | -0.10 [-0.30, +0.10] | '
            '-1.10 | level (seeds on both sides of the line) | -1.10 dB, 50%, 1.00× (64 ch) |') in table
    assert len(table.splitlines()) == 2 + 2 and '| 3,000 (8 × 48) |' in table  # head + two rows
    assert '+0.50' not in table


def test_the_guide_shows_the_published_summary_of_the_closest_networks():
    """docs/when_to_use_ms3.md opens with the table of the closest MS³ network per task and budget: the one that
    docs/quality/frontier_summary.json gives today (regenerate both with python scripts/frontier_summary.py)."""
    docs = osp.join(frontier.REPO_ROOT, 'docs')
    with open(osp.join(docs, 'quality', 'frontier_summary.json')) as f:
        table = frontier.closest_markdown(json.load(f))
    with open(osp.join(docs, 'when_to_use_ms3.md')) as f:
        guide = f.read()
    assert table in guide.split('\n## ', 2)[1], 'the guide\'s short answer does not show the published table'
