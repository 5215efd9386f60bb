// Acts as the old auth service and an old consumer: publishes the guide's USER_CREATED with the
// KafkaJS envelope, then waits for the CUSTOMER_CREATED that crm-router emits for it and prints
// that event as JSON. Usage: node interop.js BROKER EMAIL
const crypto = require('node:crypto');
const { Kafka, logLevel } = require('kafkajs');

const [broker, email] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'auth-service', brokers: [broker], logLevel: logLevel.NOTHING });

async function main() {
  const producer = kafka.producer();
  await producer.connect();
  const userId = crypto.randomUUID();
  const event = {
    eventId: crypto.randomUUID(),
    eventType: 'USER_CREATED',
    timestamp: new Date().toISOString(),
    source: 'auth-service',
    data: { userId, email, name: 'KafkaJS User', role: 'USER' },
  };
  await producer.send({ topic: 'user.events', messages: [{ key: userId, value: JSON.stringify(event) }] });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `kafkajs-observer-${crypto.randomUUID()}` });
  await consumer.connect();
  await consumer.subscribe({ topics: ['customer.events'], fromBeginning: true });
  const found = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no CUSTOMER_CREATED within 60 s')), 60000);
    consumer.run({
      eachMessage: async ({ message }) => {
        const received = JSON.parse(message.value.toString());
        if (received.eventType === 'CUSTOMER_CREATED' && received.data.email === email) {
          clearTimeout(timer);
          resolve({ key: message.key.toString(), event: received });
        }
      },
    });
  });
  await consumer.disconnect();
  console.log(JSON.stringify(found));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
