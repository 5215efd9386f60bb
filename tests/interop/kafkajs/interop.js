// Acts as the old auth service and an old consumer. For each TYPE EMAIL pair it publishes a user
// event exactly as the old services do: the envelope {eventId, eventType, timestamp, data} with
// no `source`, keyed by its event id, one producer.send per event. Then it waits for the
// CUSTOMER_CREATED that crm-router emits for each email and prints what it published and found
// as JSON. Usage: node interop.js BROKER TYPE EMAIL [TYPE EMAIL ...]
const crypto = require('node:crypto');
const { Kafka, logLevel } = require('kafkajs');

const [broker, ...pairs] = process.argv.slice(2);
const users = [];
for (let i = 0; i + 1 < pairs.length; i += 2) users.push({ eventType: pairs[i], email: pairs[i + 1] });
const kafka = new Kafka({ clientId: 'auth-service', brokers: [broker], logLevel: logLevel.NOTHING });

async function main() {
  const producer = kafka.producer();
  await producer.connect();
  const published = [];
  for (const { eventType, email } of users) {
    const event = {
      eventId: crypto.randomUUID(),
      eventType,
      timestamp: new Date().toISOString(),
      data: { userId: crypto.randomUUID(), email, name: `KafkaJS User (${eventType})`, role: 'USER' },
    };
    await producer.send({ topic: 'user.events', messages: [{ key: event.eventId, value: JSON.stringify(event) }] });
    published.push(event);
  }
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `kafkajs-observer-${crypto.randomUUID()}` });
  await consumer.connect();
  await consumer.subscribe({ topics: ['customer.events'], fromBeginning: true });
  const found = {};
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`CUSTOMER_CREATED within 60 s for ${Object.keys(found).join(', ') || 'no email'} of ${users.length}`)), 60000);
    consumer.run({
      eachMessage: async ({ message }) => {
        const received = JSON.parse(message.value.toString());
        const wanted = users.some(({ email }) => email === received.data.email);
        if (received.eventType === 'CUSTOMER_CREATED' && wanted) {
          found[received.data.email] = { key: message.key.toString(), event: received };
          if (Object.keys(found).length === users.length) {
            clearTimeout(timer);
            resolve();
          }
        }
      },
    });
  });
  await consumer.disconnect();
  console.log(JSON.stringify({ published, found }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
