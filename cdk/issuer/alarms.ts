/**
 * The alarms an on-call engineer needs, all on one topic: denials (from the access log), issuer
 * errors and KMS throttles (from the functions' log lines), API and broker 5xx, each function's
 * errors and throttles, and the publisher's lag and dead letters.
 */
import { Duration } from 'aws-cdk-lib';
import type * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as snsSubscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { INSTANCE_CREDENTIALS_PATH } from '../../lambdas/issue-credential.ts';
import { KMS_THROTTLED_LOG_FIELD } from '../../shared/bootstrap/aws/clients.ts';
import type { LanyardFunction } from '../lanyard-function.ts';
import { functionId } from './functions.ts';
import { acknowledge } from './nag.ts';
import type { ResolvedProps } from './props.ts';

/** Access-log statuses counted as denials: refused (401/403) and quota-refused or throttled (429). */
const DENIAL_STATUSES = ['401', '403', '429'] as const;
/** An alarm when the publisher's IteratorAge (AWS/Lambda, Maximum) reaches this: events lag the table. */
export const PUBLISHER_ITERATOR_AGE_ALARM = Duration.minutes(5);
/**
 * The log line the AWS runtime writes when KMS throttled a call past the SDK's retries
 * (`KMS_THROTTLED_LOG_FIELD`, shared/bootstrap/aws/clients.ts): KMS publishes no throttle metric.
 */
const KMS_THROTTLED_LOG_LINE = logs.FilterPattern.booleanValue(`$.${KMS_THROTTLED_LOG_FIELD}`, true);

/** What the alarms watch. `routed` is in the order their metric filters are created. */
export interface AlarmSources {
  readonly accessLogs: logs.LogGroup;
  readonly httpApi: apigwv2.HttpApi;
  readonly routed: readonly (LanyardFunction | undefined)[];
  readonly functions: Record<string, LanyardFunction>;
  readonly brokerFunction?: LanyardFunction | undefined;
  readonly publishEventsFunction?: LanyardFunction | undefined;
  readonly publisherDlq?: sqs.Queue | undefined;
}

export function createAlarmTopic(scope: Construct, config: ResolvedProps): sns.Topic {
  const topic = new sns.Topic(scope, 'AlarmTopic', { displayName: 'Lanyard alarms', enforceSSL: true });
  acknowledge(
    topic,
    'AwsSolutions-SNS2',
    'The topic carries only alarm state changes (names and thresholds, no credentials or identities); CloudWatch cannot publish to a topic under the AWS-managed SNS key',
  );
  if (config.alarmEmail !== undefined) topic.addSubscription(new snsSubscriptions.EmailSubscription(config.alarmEmail));
  return topic;
}

export function createAlarms(scope: Construct, topic: sns.Topic, sources: AlarmSources, config: ResolvedProps): cloudwatch.Alarm[] {
  const alarms: cloudwatch.Alarm[] = [];
  const action = new cloudwatchActions.SnsAction(topic);
  const period = Duration.minutes(5);
  const alarm = (id: string, metric: cloudwatch.IMetric, threshold: number, description: string) => {
    const created = new cloudwatch.Alarm(scope, id, {
      metric,
      threshold,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: description,
    });
    created.addAlarmAction(action);
    alarms.push(created);
    return created;
  };

  // Denials: the handlers record them in the decision log, not as metrics, so the count comes
  // from the API's access log: 401/403 answers on the routes that mint credentials, and 429
  // (quota refusals and the stage's throttling), a flood being refused.
  const denialRoutes = ['POST /v1/credentials', `POST ${INSTANCE_CREDENTIALS_PATH}`, 'POST /v1/spawn'];
  const denials = new logs.MetricFilter(scope, 'DenialsFilter', {
    logGroup: sources.accessLogs,
    metricNamespace: 'Lanyard',
    metricName: 'Denials',
    metricValue: '1',
    filterPattern: logs.FilterPattern.all(
      logs.FilterPattern.any(...denialRoutes.map((routeKey) => logs.FilterPattern.stringValue('$.routeKey', '=', routeKey))),
      logs.FilterPattern.any(...DENIAL_STATUSES.map((status) => logs.FilterPattern.stringValue('$.status', '=', status))),
    ),
  });
  alarm('DenialsAlarm', denials.metric({ statistic: 'Sum', period }), config.denialsAlarmThreshold, `Spike of refused credential requests (401/403/429 on POST /v1/credentials, ${INSTANCE_CREDENTIALS_PATH} and /v1/spawn)`);

  // Issuer errors: every ERROR line of a routed function is a request that failed closed (503).
  let issuerErrors: cloudwatch.Metric | undefined;
  let kmsThrottles: cloudwatch.Metric | undefined;
  for (const fn of sources.routed) {
    if (fn === undefined) continue;
    const filter = new logs.MetricFilter(scope, `${fn.node.id}ErrorsFilter`, {
      logGroup: fn.logGroup,
      metricNamespace: 'Lanyard',
      metricName: 'IssuerErrors',
      metricValue: '1',
      filterPattern: logs.FilterPattern.stringValue('$.level', '=', 'ERROR'),
    });
    issuerErrors ??= filter.metric({ statistic: 'Sum', period });
    // KMS throttling has no metric of its own: the runtime marks the line of a throttled call.
    const throttled = new logs.MetricFilter(scope, `${fn.node.id}KmsThrottlesFilter`, {
      logGroup: fn.logGroup,
      metricNamespace: 'Lanyard',
      metricName: 'KmsThrottles',
      metricValue: '1',
      filterPattern: KMS_THROTTLED_LOG_LINE,
    });
    kmsThrottles ??= throttled.metric({ statistic: 'Sum', period });
  }
  if (issuerErrors) alarm('IssuerErrorsAlarm', issuerErrors, config.issuerErrorsAlarmThreshold, 'Issuer failed closed (ERROR log lines of the Lanyard functions)');
  if (kmsThrottles) alarm('KmsThrottlesAlarm', kmsThrottles, 1, 'KMS throttled a signature or public-key read (ThrottlingException): signing and JWKS failed closed; see the KMS request quotas');

  alarm('Api5xxAlarm', sources.httpApi.metricServerError({ statistic: 'Sum', period }), config.api5xxAlarmThreshold, 'The API answered 5xx');
  if (sources.brokerFunction) {
    // The function URL's own count (AWS/Lambda Url5xxCount, dimension FunctionName): the broker's
    // fail-closed 503s, upstream_* 502/503/504 and Lambda's own errors and timeouts.
    alarm('Broker5xxAlarm', sources.brokerFunction.metric('Url5xxCount', { statistic: 'Sum', period }), config.api5xxAlarmThreshold, 'The broker function URL answered 5xx (broker failed closed, upstream failing, or function errors)');
  }
  for (const [name, fn] of Object.entries(sources.functions)) {
    const id = functionId(name);
    alarm(`${id}ErrorsAlarm`, fn.metricErrors({ statistic: 'Sum', period }), 1, `${id} raised an unhandled error`);
    alarm(`${id}ThrottlesAlarm`, fn.metricThrottles({ statistic: 'Sum', period }), 1, `${id} was throttled`);
  }
  if (sources.publishEventsFunction) {
    // How far behind the stream the publisher is (age of the last record of each batch): events are late by this much.
    alarm(
      'PublisherIteratorAgeAlarm',
      sources.publishEventsFunction.metric('IteratorAge', { statistic: 'Maximum', period }),
      PUBLISHER_ITERATOR_AGE_ALARM.toMilliseconds(),
      `The event publisher is more than ${PUBLISHER_ITERATOR_AGE_ALARM.toHumanString()} behind the table stream: revocation and grant events are late`,
    );
  }
  if (sources.publisherDlq) {
    alarm('PublisherDlqAlarm', sources.publisherDlq.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period }), 1, 'Stream records the publisher gave up on: events were not published');
  }
  return alarms;
}
