package dynamostore

import (
	"encoding/binary"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/dynamostore/dynamostore/internal/sessionitem"
)

// sealVersion is the first byte of data sealed with sealBinding's
// associated data; the AEAD's ciphertext follows it. Data sealed before
// it, with associatedData, has no such byte.
const sealVersion byte = 2

// sealBinding is the associated data of data sealed now: everything the
// store decides by, so that a table writer who changes any of it gets an
// item that does not open. It is sealVersion; 'z' or 'p' for compressed or
// plain, or 'Z' or 'P' for an item marked as written under a hashed token
// (sessionitem.HashedKeyAttribute, so that removing or adding the mark
// makes an item that does not open); the exact expiry in Unix milliseconds
// (8 bytes, big-endian); 1 and the owner's length and bytes, or 0 for no
// owner; and the key as stored.
func sealBinding(key string, compressed, hashed bool, expiryMs int64, owner string, hasOwner bool) []byte {
	ad := make([]byte, 0, 2+8+1+binary.MaxVarintLen64+len(owner)+len(key))
	format := byte('p')
	if compressed {
		format = 'z'
	}
	if hashed {
		format -= 'a' - 'A'
	}
	ad = append(ad, sealVersion, format)
	ad = binary.BigEndian.AppendUint64(ad, uint64(expiryMs))
	if hasOwner {
		ad = append(ad, 1)
		ad = binary.AppendUvarint(ad, uint64(len(owner)))
		ad = append(ad, owner...)
	} else {
		ad = append(ad, 0)
	}
	return append(ad, key...)
}

// associatedData is the associated data of data sealed before sealVersion:
// one byte, 'z' or 'p', then the key. Such items still open, so an upgrade
// loses no session; Reseal rewrites them under sealBinding.
func associatedData(key string, compressed bool) []byte {
	ad := make([]byte, 0, 1+len(key))
	if compressed {
		ad = append(ad, 'z')
	} else {
		ad = append(ad, 'p')
	}
	return append(ad, key...)
}

// open returns the data sealed in item, whose key is key: bound, by
// sealBinding, to the item's expiry (by sessionitem.ExpiryMillis), owner,
// format and mark of a hashed token as they are now, or, for data sealed before sealVersion, to
// its key and format alone, which RequireEncryption refuses.
func (s *itemRules) open(item map[string]types.AttributeValue, key string, sealed []byte, compressed bool) ([]byte, error) {
	if len(sealed) > 0 && sealed[0] == sealVersion {
		expiry, err := sessionitem.ExpiryMillis(item, s.expiryAttr)
		if err != nil {
			return nil, err
		}
		owner, hasOwner := item[s.ownerAttr].(*types.AttributeValueMemberS)
		var o string
		if hasOwner {
			o = owner.Value
		}
		_, hashed := item[sessionitem.HashedKeyAttribute]
		if data, err := s.aead.Decrypt(sealed[1:], sealBinding(key, compressed, hashed, expiry, o, hasOwner)); err == nil {
			return data, nil
		}
		// Data sealed before sealVersion may begin with the same byte.
	}
	if s.requireSeal {
		// Bound to its key alone, so a writer could change its expiry and
		// owner: RequireEncryption refuses it, once Reseal has bound the
		// sessions that were live.
		return nil, errors.New("sealed before its expiry and owner were bound")
	}
	return s.aead.Decrypt(sealed, associatedData(key, compressed))
}
