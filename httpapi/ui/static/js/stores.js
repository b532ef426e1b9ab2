// Data shared by the pages. The device list (every device with its
// details, one call) is fetched at most once per poll whichever page shows
// it; catalogs (images, states, environments, PXE configs) change rarely
// and are kept for a while.

import { get } from './api.js';

/** poller shares one in-flight fetch between callers. */
function poller(load) {
  let inflight = null;
  return () => {
    if (!inflight) inflight = load().finally(() => { inflight = null; });
    return inflight;
  };
}

/**
 * devices holds /api/device/list/?details=1; version changes when the
 * answer does. An answer that took long (a big lab, a busy server) is
 * asked for less often, unless an action just ran (force).
 */
export const devices = {
  list: [],
  text: '',
  version: 0,
  at: 0,
  took: 0,
  /** refresh fetches the list unless it is fresh enough; it resolves true when it changed. */
  refresh(force = false) {
    if (!force && Date.now() - this.at < Math.min(15000, this.took * 8)) return Promise.resolve(false);
    return loadDevices();
  },
};
const loadDevices = poller(async () => {
  const t0 = Date.now();
  const { text, data } = await get('device/list/?details=1', { raw: true });
  devices.at = Date.now();
  devices.took = devices.at - t0;
  if (text === devices.text) return false;
  devices.text = text;
  devices.list = data.devices;
  devices.version++;
  return true;
});

/** cached keeps an answer for ttl ms. */
function cached(path, pick, ttl = 30000) {
  let at = 0, value = null, inflight = null;
  return async (force = false) => {
    if (!force && value && Date.now() - at < ttl) return value;
    if (!inflight) {
      inflight = get(path).then(d => { value = pick(d); at = Date.now(); return value; })
        .finally(() => { inflight = null; });
    }
    return inflight;
  };
}

/** images lists the visible images with their boot_config_keys. */
export const images = cached('image/list/', d => d.images);
/** states lists the device state table (name, failed, accepts_please…). */
export const states = cached('lifeguard/states/', d => d.states, 600000);
/** environments lists the devices' environments (nulls dropped). */
export const environments = cached('environment/list/', d => d.environments.filter(e => e != null));
/** pxeConfigs lists the active PXE config names. */
export const pxeConfigs = cached('bmm/pxe_config/list/?active_only=1', d => d.pxe_configs);
/** deviceNames lists every device name. */
export const deviceNames = cached('device/list/', d => d.devices);
