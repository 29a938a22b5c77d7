"""Numba kernels of the wedge simulator: charge transport to the pads, and digitization.

Both kernels draw from their own xoshiro256** generator (:mod:`.rng`), seeded at their start,
and run on one thread, so a given seed gives bit-identical output. Arrays of wedges have the
shape (slots, layer, azimuth, time); ``slot_of[side, sector]`` maps a wedge to its slot, -1
for wedges that are not simulated.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .collisions import CHARGE, COSH_ETA, DRIFT_SHIFT, IONIZATION, MAX_PATH, PHI, PT, SINH_ETA, X0, Y0, Z0
from .responses import PAD_REACH, SUBDIVISIONS, TIME_REACH
from .rng import exponential, geometric_gap, new_state, normal, normal_above, normal_below, uniform

# Indices into the float64 parameter vector of deposit_charge (filled by the engine).
(
    P_INNER_RADIUS, P_LAYER_THICKNESS, P_OUTER_CAGE, P_DRIFT_LENGTH, P_TIME_BIN, P_MEMBRANE_INDEX,
    P_DIFFUSION_T, P_DIFFUSION_L, P_SMEAR_T, P_SMEAR_L, P_CLUSTERS_PER_CM, P_GAIN_ADC,
    P_RADIUS_PER_GEV, P_STEP,
) = range(14)
PARAMETER_COUNT = 14

# Steps further than this from the outer group (cm) cannot put charge in it by diffusion.
_ANNULUS_MARGIN = 0.5
# Pads beyond a step's own that its charge can reach: 0.5 cm of diffusion (over 4 sigma at the
# longest drift) is under 3 pads at 60 cm, plus the pad response.
_PAD_MARGIN = 5
# Cluster buffer: rows of (x, y, z, phi, drift shift).
_BUFFER_ROWS = 8192
_CLUSTER_COLUMNS = 5
_X, _Y, _Z, _PHI, _SHIFT = range(_CLUSTER_COLUMNS)


@numba.njit(cache=True, nogil=True, inline="always")
def _wrap_angle(angle):  # pragma: no cover - compiled by numba
    if angle > math.pi:
        angle -= 2.0 * math.pi
    elif angle < -math.pi:
        angle += 2.0 * math.pi
    return angle


@numba.njit(cache=True, nogil=True)
def _turn_to_radius(x, y, centre_x, centre_y, radius, turn, target):  # pragma: no cover - compiled by numba
    # Angle the helix must turn, moving in direction ``turn``, from (x, y) until its distance
    # from the beam line is ``target``; -1 when its circle never gets there. A point at angle
    # theta around the centre C lies at |P|^2 = |C|^2 + R^2 + 2 R |C| cos(theta - theta_C).
    distance = math.sqrt(centre_x * centre_x + centre_y * centre_y)
    if distance == 0.0:
        return -1.0
    cosine = (target * target - distance * distance - radius * radius) / (2.0 * radius * distance)
    if cosine < -1.0 or cosine > 1.0:
        return -1.0
    base = math.atan2(centre_y, centre_x)
    spread = math.acos(cosine)
    current = math.atan2(y - centre_y, x - centre_x)
    first = (turn * (base + spread - current)) % (2.0 * math.pi)
    second = (turn * (base - spread - current)) % (2.0 * math.pi)
    return min(first, second)


@numba.njit(cache=True, nogil=True)
def _deposit_clusters(
    grid, pad_row, state, clusters, count, parameters,
    pad_share, pad_first, pad_last, time_share, time_first, time_last, cluster_cdf,
):  # pragma: no cover - compiled by numba
    # Electrons of the first ``count`` clusters (rows x, y, z, phi, drift shift) to the pads.
    # pad_row[side, pad] is the flat offset of (slot, layer 0, pad, sample 0), -1 when the
    # pad's wedge is not simulated.
    layers = grid.shape[1]
    pads_per_sector = grid.shape[2]
    time_samples = grid.shape[3]
    pads_per_ring = pad_row.shape[1]
    pads_per_radian = pads_per_ring / (2.0 * math.pi)
    drift_length = parameters[P_DRIFT_LENGTH]
    time_bin = parameters[P_TIME_BIN]
    early = -TIME_REACH * time_bin
    late = drift_length + TIME_REACH * time_bin
    # Flat views, so the innermost loop does one multiply-add per index.
    flat_grid = grid.reshape(-1)
    flat_shares = time_share.reshape(-1)
    time_width = time_share.shape[2]
    layer_stride = pads_per_sector * time_samples

    for c in range(count):
        z = clusters[c, _Z]
        distance = abs(z)
        if distance >= drift_length:
            continue
        side = 0 if z < 0.0 else 1
        drift = drift_length - distance
        # Drift distance at which the charge reaches the pads, counted from the trigger:
        # pileup charge arrives earlier or later by drift_velocity * t0.
        arrival = drift + clusters[c, _SHIFT]
        if arrival < early or arrival > late:
            continue

        x = clusters[c, _X]
        y = clusters[c, _Y]
        phi = clusters[c, _PHI]
        radius = math.sqrt(x * x + y * y)
        sigma_t = math.sqrt(parameters[P_DIFFUSION_T] ** 2 * drift + parameters[P_SMEAR_T] ** 2)
        sigma_l = math.sqrt(parameters[P_DIFFUSION_L] ** 2 * drift + parameters[P_SMEAR_L] ** 2)

        draw = uniform(state)
        size = 1
        while size < cluster_cdf.shape[0] and draw > cluster_cdf[size - 1]:
            size += 1

        for _ in range(size):
            # Transverse diffusion is isotropic, so its radial and tangential parts are
            # independent; to first order in sigma_t / radius they shift radius and angle.
            electron_radius = radius + sigma_t * normal(state)
            layer_position = (electron_radius - parameters[P_INNER_RADIUS]) / parameters[P_LAYER_THICKNESS]
            if layer_position < 0.0 or layer_position >= layers:
                continue
            layer = int(layer_position)
            electron_phi = phi + sigma_t * normal(state) / radius

            sample = (arrival + sigma_l * normal(state)) / time_bin
            if side == 1:
                sample = parameters[P_MEMBRANE_INDEX] - sample
            if sample < -TIME_REACH or sample >= time_samples + TIME_REACH:
                continue
            charge = parameters[P_GAIN_ADC] * exponential(state)

            pad_position = (electron_phi + math.pi) * pads_per_radian
            pad_base = int(math.floor(pad_position))
            pad_sub = min(int((pad_position - pad_base) * SUBDIVISIONS), SUBDIVISIONS - 1)
            time_base = int(math.floor(sample))
            time_sub = min(int((sample - time_base) * SUBDIVISIONS), SUBDIVISIONS - 1)
            first = max(time_first[side, time_sub], TIME_REACH - time_base)
            last = min(time_last[side, time_sub], time_samples - 1 + TIME_REACH - time_base)
            offset = time_base - TIME_REACH

            shares = (side * SUBDIVISIONS + time_sub) * time_width
            for j in range(pad_first[layer, pad_sub], pad_last[layer, pad_sub] + 1):
                pad = pad_base + j - PAD_REACH
                if pad < 0:
                    pad += pads_per_ring
                elif pad >= pads_per_ring:
                    pad -= pads_per_ring
                slot_row = pad_row[side, pad]
                if slot_row < 0:
                    continue
                row = slot_row + layer * layer_stride
                pad_charge = np.float32(charge * pad_share[layer, pad_sub, j])
                for k in range(first, last + 1):
                    flat_grid[row + offset + k] += pad_charge * flat_shares[shares + k]


@numba.njit(cache=True, nogil=True)
def deposit_charge(
    grid, slot_of, sector_used, tracks, parameters, seed,
    pad_share, pad_first, pad_last, time_share, time_first, time_last, cluster_cdf,
):  # pragma: no cover - compiled by numba
    """Follow every track through the outer layers and add its charge (ADC counts) to ``grid``.

    A track is a helix in the solenoid field, stepped in transverse arc length with chords.
    Primary ionization clusters form a Poisson process along the 3D path (exponential gaps).
    Every electron of a cluster diffuses, is amplified with an exponential gain and is shared
    among pads and time samples by the response tables. Tracks stop when they leave the gas
    (|z| beyond the readout plane, or past the outer field cage), decay, or reach their path
    limit. Clusters are collected in a buffer and deposited in batches, because a numba call
    with array arguments costs about 100 ns, more than a cluster's own work.
    """
    state = new_state(seed)
    clusters = np.empty((_BUFFER_ROWS, _CLUSTER_COLUMNS))
    count = 0
    pads_per_sector = grid.shape[2]
    sectors = slot_of.shape[1]
    pads_per_ring = pads_per_sector * sectors
    pads_per_radian = pads_per_ring / (2.0 * math.pi)
    inner = parameters[P_INNER_RADIUS] - _ANNULUS_MARGIN
    outer = parameters[P_INNER_RADIUS] + grid.shape[1] * parameters[P_LAYER_THICKNESS] + _ANNULUS_MARGIN
    drift_length = parameters[P_DRIFT_LENGTH]

    # Flat offset of (slot, layer 0, pad, sample 0) for every pad of the ring, so that the
    # electron loop needs no integer division (a 64-bit division costs more than the rest of
    # an electron's bookkeeping).
    layers = grid.shape[1]
    time_samples = grid.shape[3]
    pad_row = np.full((slot_of.shape[0], pads_per_ring), -1, dtype=np.int64)
    for side in range(slot_of.shape[0]):
        for pad in range(pads_per_ring):
            sector = pad // pads_per_sector
            slot = slot_of[side, sector]
            if slot >= 0:
                pad_row[side, pad] = (slot * layers * pads_per_sector + pad - sector * pads_per_sector) * time_samples

    for t in range(tracks.shape[0]):
        track = tracks[t]
        radius = track[PT] * parameters[P_RADIUS_PER_GEV]
        turn = -track[CHARGE]  # a positive track turns clockwise in a field along +z
        step = min(parameters[P_STEP], 0.05 * radius)
        # Clusters per cm of transverse path (the 3D path is cosh(eta) times longer).
        density = parameters[P_CLUSTERS_PER_CM] * track[IONIZATION] * track[COSH_ETA]
        next_cluster = exponential(state) / density

        sin_psi = math.sin(track[PHI])
        cos_psi = math.cos(track[PHI])
        centre_x = track[X0] - turn * radius * sin_psi
        centre_y = track[Y0] + turn * radius * cos_psi
        rotation = turn * step / radius
        cos_step = math.cos(rotation)
        sin_step = math.sin(rotation)
        dz = step * track[SINH_ETA]

        xa = track[X0]
        ya = track[Y0]
        za = track[Z0]
        ra = math.sqrt(xa * xa + ya * ya)
        phia = 0.0
        phia_valid = False
        travelled = 0.0
        while travelled < track[MAX_PATH]:
            if ra < inner - step:
                # Well inside the outer group's inner radius nothing is recorded: jump to one
                # step before the helix reaches it again (or stop if it never does). Within a
                # step of that radius plain steps follow, so a landing point that rounding puts
                # just below the radius cannot send the helix round a whole extra turn.
                angle = _turn_to_radius(xa, ya, centre_x, centre_y, radius, turn, inner)
                if angle < 0.0:
                    break
                jump = radius * angle - step
                if jump > step:
                    rotation_jump = turn * jump / radius
                    cos_jump = math.cos(rotation_jump)
                    sin_jump = math.sin(rotation_jump)
                    sin_psi, cos_psi = sin_psi * cos_jump + cos_psi * sin_jump, cos_psi * cos_jump - sin_psi * sin_jump
                    xa = centre_x + turn * radius * sin_psi
                    ya = centre_y - turn * radius * cos_psi
                    za += jump * track[SINH_ETA]
                    ra = math.sqrt(xa * xa + ya * ya)
                    travelled += jump
                    phia_valid = False
                    next_cluster = exponential(state) / density
                    if travelled >= track[MAX_PATH] or abs(za) > drift_length:
                        break

            sin_psi, cos_psi = sin_psi * cos_step + cos_psi * sin_step, cos_psi * cos_step - sin_psi * sin_step
            xb = centre_x + turn * radius * sin_psi
            yb = centre_y - turn * radius * cos_psi
            zb = za + dz
            rb = math.sqrt(xb * xb + yb * yb)
            travelled += step
            if abs(zb) > drift_length or rb > parameters[P_OUTER_CAGE]:
                break

            needed = False
            if max(ra, rb) >= inner and min(ra, rb) <= outer:
                if not phia_valid:
                    phia = math.atan2(ya, xa)
                phib = math.atan2(yb, xb)
                phia_valid = True
                # Diffusion and the pad response carry charge at most _PAD_MARGIN pads from the
                # step, so only the sectors that range overlaps need the step's clusters.
                low = min(phia, phib) + math.pi
                high = max(phia, phib) + math.pi
                if high - low > math.pi:  # the step crosses phi = +-pi
                    low, high = high, low + 2.0 * math.pi
                first_pad = int(math.floor(low * pads_per_radian)) - _PAD_MARGIN
                last_pad = int(math.floor(high * pads_per_radian)) + _PAD_MARGIN
                first_sector = (first_pad + pads_per_ring) // pads_per_sector
                last_sector = (last_pad + pads_per_ring) // pads_per_sector
                for sector in range(first_sector, last_sector + 1):
                    if sector_used[sector % sectors]:
                        needed = True
            else:
                phia_valid = False

            if needed:
                dphi = _wrap_angle(phib - phia)
                while next_cluster < step:
                    if count == _BUFFER_ROWS:
                        _deposit_clusters(
                            grid, pad_row, state, clusters, count, parameters,
                            pad_share, pad_first, pad_last, time_share, time_first, time_last, cluster_cdf,
                        )
                        count = 0
                    u = next_cluster / step
                    clusters[count, _X] = xa + u * (xb - xa)
                    clusters[count, _Y] = ya + u * (yb - ya)
                    clusters[count, _Z] = za + u * dz
                    clusters[count, _PHI] = _wrap_angle(phia + u * dphi)
                    clusters[count, _SHIFT] = track[DRIFT_SHIFT]
                    count += 1
                    next_cluster += exponential(state) / density
            else:
                # No cluster is placed outside the simulated region. The gap process is
                # memoryless, so the next cluster is drawn afresh from the end of this step.
                next_cluster = step + exponential(state) / density
            if phia_valid:
                phia = phib
            next_cluster -= step
            xa = xb
            ya = yb
            za = zb
            ra = rb

    _deposit_clusters(
        grid, pad_row, state, clusters, count, parameters,
        pad_share, pad_first, pad_last, time_share, time_first, time_last, cluster_cdf,
    )


@numba.njit(cache=True, nogil=True)
def digitize(
    grid, out, slot_side, eta_cut, eta_first, eta_last, pedestal, noise_rms, threshold, max_adc, block, apply_eta_cut, seed,
):  # pragma: no cover - compiled by numba
    """Turn charge (ADC counts, no pedestal) into zero-suppressed 10-bit ADC values in ``out``.

    Every sample gets pedestal + signal + Gaussian noise. Scanning each pad in drift-time
    order (index up on side 0, down on side 1), a sample above ``threshold`` is recorded with
    the next ``block - 1`` samples, and the scan resumes after the block, as the sPHENIX
    digitizer does. Recorded values are floor(analog), capped at ``max_adc``; the rest stay 0.

    Noise of samples without signal matters only where it crosses the threshold or lies in a
    recorded block. The crossings are placed with geometric gaps (probability of a crossing
    per sample), and their noise is drawn from the Gaussian tail. All other noise is drawn
    from the Gaussian below threshold when needed. Together this is exactly independent
    Gaussian noise per sample, without drawing it for the 18 million empty samples of an event.

    With ``apply_eta_cut``, a recorded sample where ``eta_cut[side, layer, index]`` is True is
    cleared unless the sample before it (in index order) was kept: the public data's
    TPCMLDataInterface drops every wavelet that starts beyond the eta acceptance. The True
    entries of each (side, layer) must form one run ``eta_first..eta_last`` (-1 when none).
    """
    state = new_state(seed)
    z_threshold = (threshold - pedestal) / noise_rms
    crossing = 0.5 * math.erfc(z_threshold / math.sqrt(2.0))
    log_fail = math.log1p(-crossing)
    slots, layers, pads, samples = grid.shape

    for slot in range(slots):
        side = slot_side[slot]
        for layer in range(layers):
            for pad in range(pads):
                row = grid[slot, layer, pad]
                result = out[slot, layer, pad]
                next_crossing = geometric_gap(state, log_fail)
                position = 0
                while position < samples:
                    index = position if side == 0 else samples - 1 - position
                    signal = row[index]
                    if position == next_crossing:
                        noise = normal_above(state, z_threshold)
                        next_crossing += 1 + geometric_gap(state, log_fail)
                    elif signal == 0.0:
                        position += 1
                        continue
                    else:
                        noise = normal_below(state, z_threshold)
                    analog = pedestal + signal + noise * noise_rms
                    if analog <= threshold:
                        position += 1
                        continue

                    for offset in range(block):
                        current = position + offset
                        if current >= samples:
                            break
                        index = current if side == 0 else samples - 1 - current
                        if offset > 0:
                            if current == next_crossing:
                                noise = normal_above(state, z_threshold)
                                next_crossing += 1 + geometric_gap(state, log_fail)
                            else:
                                noise = normal_below(state, z_threshold)
                            analog = pedestal + row[index] + noise * noise_rms
                        result[index] = min(max(math.floor(analog), 0.0), max_adc)
                    position += block

                if apply_eta_cut and eta_first[side, layer] >= 0:
                    # The cut samples of a row are one run (see eta_first), so the scan starts
                    # one sample before it, where the run-continuation state is known.
                    kept = False
                    for index in range(max(eta_first[side, layer] - 1, 0), eta_last[side, layer] + 1):
                        if result[index] == 0:
                            kept = False
                        elif kept or not eta_cut[side, layer, index]:
                            kept = True
                        else:
                            result[index] = 0
