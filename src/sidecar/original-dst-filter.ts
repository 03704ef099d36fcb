import type { PhaseFilter } from '../filter';
import type { OriginalDstTracker } from './destinations';

/**
 * The phase filter an original_dst listener puts first in its chain: copies
 * the connection's original destination onto each exchange, for routes
 * (attributes original_dst_ip, original_dst_port), the original_dst cluster
 * and the access log (info original_dst). A direct connection that is served
 * gets none of them.
 */
export function originalDstFilter(tracker: OriginalDstTracker): PhaseFilter {
  return {
    kind: 'phase',
    name: 'original_dst',
    onRequest(ex) {
      const e = tracker.lookup(ex.clientAddress, ex.clientPort);
      if (e !== null) {
        const a = ex.attrs;
        a['original_dst_ip'] = e.ip;
        a['original_dst_port'] = e.portText;
        ex.info['original_dst'] = e.text;
      }
      return undefined;
    },
  };
}
