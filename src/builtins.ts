/**
 * The composition root: the filter types and protocols this build of
 * Portway knows. The core reaches them only through these registries.
 */
import { FilterRegistry } from './filter';
import { ProtocolRegistry } from './protocols/protocol';
import { tcpProtocol } from './protocols/tcp';
import { redisProtocol } from './protocols/redis';
import { xmlrpcProtocol, xmlrpcHttpHandler } from './protocols/xmlrpc';
import { kafkaProtocol } from './protocols/kafka';
import { boltProtocol } from './protocols/bolt';
import { autoProtocol } from './protocols/auto';
import { accessLogFilter } from '../filters/access_log';
import { routerFilter } from '../filters/router';
import { rateLimitFilter } from '../filters/rate_limit';
import { faultFilter } from '../filters/fault';
import { timeoutFilter } from '../filters/timeout';
import { retryFilter } from '../filters/retry';
import { circuitBreakerFilter } from '../filters/circuit_breaker';
import type { Registries } from './config/validate';
import { DiscoveryRegistry } from './routing/discovery/source';
import { dnsSrvDiscovery } from './routing/discovery/dns-srv';
import { fileDiscovery } from './routing/discovery/file';
import { zookeeperDiscovery } from './routing/discovery/zookeeper';
import { etcdDiscovery } from './routing/discovery/etcd';
import { ComponentRegistry } from './components/component';
import { memoryComponent } from './components/memory';
import { memoryLogComponent } from './components/log/memory';
import { embeddedLogComponent } from './components/log/embedded';
import { HealthProbeRegistry, tcpHealthProbe } from './routing/health/probe';
import { redisHealthProbe } from './protocols/redis/health-probe';
import { createHttpProtocol, HttpHandlerRegistry, httpHealthProbe } from './protocols/http';
import { boltHealthProbe } from './protocols/bolt/health-probe';

export function builtinFilters(): FilterRegistry {
  return new FilterRegistry()
    .register(accessLogFilter)
    .register(routerFilter)
    .register(rateLimitFilter)
    .register(faultFilter)
    .register(timeoutFilter)
    .register(retryFilter)
    .register(circuitBreakerFilter);
}

export function builtinProtocols(): ProtocolRegistry {
  return new ProtocolRegistry().register(tcpProtocol).register(redisProtocol).register(createHttpProtocol(new HttpHandlerRegistry().register(xmlrpcHttpHandler))).register(kafkaProtocol).register(boltProtocol).register(xmlrpcProtocol).register(autoProtocol);
}

export function builtinDiscovery(): DiscoveryRegistry {
  return new DiscoveryRegistry().register(dnsSrvDiscovery).register(fileDiscovery).register(zookeeperDiscovery).register(etcdDiscovery);
}

export function builtinComponents(): ComponentRegistry {
  return new ComponentRegistry().register(memoryComponent).register(memoryLogComponent).register(embeddedLogComponent);
}

/** Active health check probes by health_check.active.type; each protocol contributes its own. */
export function builtinHealthProbes(): HealthProbeRegistry {
  return new HealthProbeRegistry().register(tcpHealthProbe).register(redisHealthProbe).register(httpHealthProbe).register(boltHealthProbe);
}

export interface Builtins {
  filters: FilterRegistry;
  protocols: ProtocolRegistry;
  discovery: DiscoveryRegistry;
  components: ComponentRegistry;
  healthProbes: HealthProbeRegistry;
  /** The view the config validator takes. */
  registries: Registries;
}

export function builtins(): Builtins {
  const filters = builtinFilters();
  const protocols = builtinProtocols();
  const discovery = builtinDiscovery();
  const components = builtinComponents();
  const healthProbes = builtinHealthProbes();
  return {
    filters,
    protocols,
    discovery,
    components,
    healthProbes,
    registries: {
      filters: filters.specs(),
      protocols: protocols.specs(),
      discovery: discovery.specs(),
      components: components.specs(),
      healthProbes: healthProbes.specs(),
    },
  };
}
