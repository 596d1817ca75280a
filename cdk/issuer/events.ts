/** Events (docs/events.md): a custom bus, and an archive of everything Lanyard publishes on it. */
import * as events from 'aws-cdk-lib/aws-events';
import type { Construct } from 'constructs';
import type { ResolvedProps } from './props.ts';

/** Event `source` of every Lanyard event (docs/events.md); the archive keeps these. */
export const EVENT_SOURCE = 'lanyard';

export function createEventBus(scope: Construct, config: ResolvedProps, eventBusName: string | undefined): { bus: events.EventBus; archive: events.Archive } {
  const bus = new events.EventBus(scope, 'EventBus', {
    ...(eventBusName !== undefined && { eventBusName }),
    description: 'Lanyard revocation, grant and key-rotation events',
  });
  const archive = bus.archive('Archive', {
    description: 'Every lanyard event, for replay after a consumer outage',
    eventPattern: { source: [EVENT_SOURCE] },
    retention: config.eventArchiveRetention,
  });
  return { bus, archive };
}
