package dynamostore_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"log"
	"os"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynamostore/dynamostore"
)

// Sessions sealed with the standard library's AES-256-GCM under a 32-byte
// key kept base64-encoded in the environment variable SESSION_KEY, and
// tokens hashed by scs: a reader of the table learns neither the data nor
// a usable token. For key rotation, use a tink-go keyset instead: its
// tink.AEAD satisfies dynamostore.AEAD as it is, seals under the keyset's
// primary key and opens what any of its keys sealed.
func Example_encryption() {
	key, err := base64.StdEncoding.DecodeString(os.Getenv("SESSION_KEY"))
	if err != nil || len(key) != 32 {
		log.Fatal("SESSION_KEY must be 32 bytes, base64-encoded")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		log.Fatal(err)
	}
	gcm, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	store := dynamostore.New(dynamodb.NewFromConfig(cfg), func(o *dynamostore.Options) {
		o.Encryption = sealer{gcm}
	})
	defer store.StopCleanup()

	sessionManager := scs.New()
	sessionManager.HashTokenInStore = true
	sessionManager.Store = store
}

// sealer is a cipher.AEAD that makes its own nonces, as the one from
// cipher.NewGCMWithRandomNonce does, as a dynamostore.AEAD: Seal puts a
// random nonce before the ciphertext, and Open takes it from there.
type sealer struct{ aead cipher.AEAD }

func (s sealer) Encrypt(plaintext, associatedData []byte) ([]byte, error) {
	return s.aead.Seal(nil, nil, plaintext, associatedData), nil
}

func (s sealer) Decrypt(ciphertext, associatedData []byte) ([]byte, error) {
	return s.aead.Open(nil, nil, ciphertext, associatedData)
}
