#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The hosted NGSI-v2 store's entity API, end to end, as Orion documents it
# (NGSI-v2 specification, doc/manuals/orion-api.md; Orion user manual):
# create (normalized and keyValues, default entity type Thing, default
# attribute types, "metadata": {} on every attribute, Location, 422 Already
# Exists, upsert), read (type= to tell apart two entities of one id, 409
# TooManyResults, attrs=, metadata=, the builtin dateCreated/dateModified as
# attributes and as metadata, keyValues/values/unique), list (id and type
# lists, idPattern/typePattern, the Simple Query Language in q and mq, limit
# 20 by default and 1000 at most, offset, orderBy, creation order stable
# across pages, options=count), the attribute sub-resources, delete, types,
# the batch operations, and /version, /v2, Fiware-Correlator.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/authz_lib.sh"
source "$(dirname "$0")/ngsi_lib.sh"

RUN_TIMEOUT=30
ngsi_setup

ISO_MS='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'
UUID='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

# ------------------------------------------------------------------ create

ngsi_json POST /v2/entities '{
  "id": "Room1", "type": "Room",
  "temperature": {"value": 23.5, "type": "Number", "metadata": {"accuracy": {"value": 0.5}}},
  "name": {"value": "kitchen"},
  "open": {"value": true},
  "info": {"value": {"floor": 2, "tags": ["a", "b"]}},
  "list": {"value": [1, 2]},
  "nothing": {},
  "unit": {"value": "CEL", "type": "UnitCode"}
}'
assert_status 201 "POST /v2/entities (normalized) creates Room1"
assert_eq "/v2/entities/Room1?type=Room" "$(header Location)" "Location names the new entity and its type"
assert_eq "" "$HTTP_BODY" "a 201 of a creation has no body"

ngsi GET /v2/entities/Room1
assert_status 200 "GET /v2/entities/Room1"
assert_eq "application/json" "$(header Content-Type)" "an entity is application/json"
assert_json '. == {
  "id": "Room1", "type": "Room",
  "temperature": {"type": "Number", "value": 23.5, "metadata": {"accuracy": {"type": "Number", "value": 0.5}}},
  "name": {"type": "Text", "value": "kitchen", "metadata": {}},
  "open": {"type": "Boolean", "value": true, "metadata": {}},
  "info": {"type": "StructuredValue", "value": {"floor": 2, "tags": ["a", "b"]}, "metadata": {}},
  "list": {"type": "StructuredValue", "value": [1, 2], "metadata": {}},
  "nothing": {"type": "None", "value": null, "metadata": {}},
  "unit": {"type": "UnitCode", "value": "CEL", "metadata": {}}
}' "Room1 as created: default attribute and metadata types (Text, Number, Boolean, StructuredValue, None), metadata {} everywhere, value null when left out"

ngsi_json POST '/v2/entities?options=keyValues' \
  '{"id": "Room2", "type": "Room", "temperature": 19, "name": "hall", "open": false, "info": {"floor": 1}, "nothing": null}'
assert_status 201 "POST /v2/entities?options=keyValues creates Room2"
assert_eq "/v2/entities/Room2?type=Room" "$(header Location)" "Location of Room2"
ngsi GET /v2/entities/Room2
assert_json '. == {
  "id": "Room2", "type": "Room",
  "temperature": {"type": "Number", "value": 19, "metadata": {}},
  "name": {"type": "Text", "value": "hall", "metadata": {}},
  "open": {"type": "Boolean", "value": false, "metadata": {}},
  "info": {"type": "StructuredValue", "value": {"floor": 1}, "metadata": {}},
  "nothing": {"type": "None", "value": null, "metadata": {}}
}' "Room2 (keyValues) has the default attribute types and metadata {}"

ngsi_json POST /v2/entities '{"id": "Lamp1", "on": {"value": true}}'
assert_status 201 "an entity without type is created"
assert_eq "/v2/entities/Lamp1?type=Thing" "$(header Location)" "its type is Thing (Location)"
ngsi GET /v2/entities/Lamp1
assert_json '. == {"id": "Lamp1", "type": "Thing", "on": {"type": "Boolean", "value": true, "metadata": {}}}' \
  "an entity created without type has type Thing"

ngsi_json POST /v2/entities '{"id": "Room1", "type": "Room", "x": {"value": 1}}'
assert_error 422 Unprocessable "creating Room1 again"
assert_json '.description == "Already Exists"' "the description is Orion's: Already Exists"
ngsi GET /v2/entities/Room1 -G --data-urlencode attrs=x
assert_json '. == {"id": "Room1", "type": "Room"}' "the refused creation added nothing to Room1"

ngsi_json POST '/v2/entities?options=upsert' '{"id": "Room1", "type": "Room", "humidity": {"value": 40}, "name": {"value": "kitchen 2"}}'
assert_status 204 "POST ?options=upsert of an existing entity answers 204 (it updates)"
ngsi GET '/v2/entities/Room1?options=keyValues'
assert_jq '.humidity == 40 and .name == "kitchen 2" and .temperature == 23.5 and .open == true' "$HTTP_BODY" \
  "upsert appended humidity, updated name and kept the other attributes"
ngsi_json POST '/v2/entities?options=upsert' '{"id": "Room3", "type": "Room", "temperature": {"value": 15}}'
assert_status 201 "POST ?options=upsert of a new entity creates it (201)"
assert_eq "/v2/entities/Room3?type=Room" "$(header Location)" "Location of the upserted Room3"

# ------------------------------------------------------------------ read

ngsi_create '{"id": "Twin", "type": "A", "a": {"value": 1}}'
ngsi_create '{"id": "Twin", "type": "B", "b": {"value": 2}}'
ngsi GET /v2/entities/Twin
assert_error 409 TooManyResults "GET /v2/entities/Twin (two types share the id)"
ngsi GET '/v2/entities/Twin?type=B'
assert_status 200 "GET /v2/entities/Twin?type=B"
assert_json '. == {"id": "Twin", "type": "B", "b": {"type": "Number", "value": 2, "metadata": {}}}' "type=B picks the entity of type B"
ngsi GET '/v2/entities/Twin/attrs?type=A'
assert_json '. == {"a": {"type": "Number", "value": 1, "metadata": {}}}' "GET .../attrs?type=A picks type A"
ngsi GET /v2/entities/Twin/attrs
assert_error 409 TooManyResults "GET /v2/entities/Twin/attrs without type"
ngsi GET /v2/entities/NoSuchEntity
assert_error 404 NotFound "GET of an entity that does not exist"
ngsi GET '/v2/entities/Room1?type=Car'
assert_error 404 NotFound "GET Room1 with a type it does not have"

ngsi GET '/v2/entities/Room1?attrs=temperature,name'
assert_json '. == {"id": "Room1", "type": "Room",
  "temperature": {"type": "Number", "value": 23.5, "metadata": {"accuracy": {"type": "Number", "value": 0.5}}},
  "name": {"type": "Text", "value": "kitchen 2", "metadata": {}}}' "attrs=temperature,name shows those two only"
ngsi GET '/v2/entities/Room1?attrs=name,temperature,open&options=values'
assert_json '. == ["kitchen 2", 23.5, true]' "options=values gives the values in the order attrs= names them"
ngsi GET '/v2/entities/Room1?attrs=temperature,open,name&options=values'
assert_json '. == [23.5, true, "kitchen 2"]' "options=values follows another order of attrs= too"
ngsi GET '/v2/entities/Room1?options=keyValues&attrs=temperature,open'
assert_json '. == {"id": "Room1", "type": "Room", "temperature": 23.5, "open": true}' "options=keyValues"

ngsi_create '{"id": "U1", "type": "Uniq", "a": {"value": 1}, "b": {"value": 1}, "c": {"value": "x"}, "d": {"value": "x"}, "e": {"value": 2}}'
ngsi GET '/v2/entities/U1?options=unique&attrs=a,b,c,d,e'
assert_json '. == [1, "x", 2]' "options=unique leaves out repeated values"
ngsi GET '/v2/entities/U1?options=values&attrs=a,b,c,d,e'
assert_json '. == [1, 1, "x", "x", 2]' "options=values keeps them"

ngsi GET '/v2/entities/Room1?metadata=accuracy&attrs=temperature'
assert_json '.temperature.metadata == {"accuracy": {"type": "Number", "value": 0.5}}' "metadata=accuracy"
ngsi GET '/v2/entities/Room1?metadata=nosuch&attrs=temperature'
assert_json '.temperature.metadata == {}' "metadata= naming no metadata the attribute has: {}"
ngsi GET '/v2/entities/Room1?metadata=dateCreated,dateModified&attrs=temperature'
assert_json '.temperature.metadata | keys == ["dateCreated", "dateModified"]' \
  "metadata=dateCreated,dateModified shows only the builtin metadata"
assert_json '.temperature.metadata.dateCreated.type == "DateTime" and .temperature.metadata.dateModified.type == "DateTime"' \
  "builtin metadata are of type DateTime"
assert_match "$ISO_MS" "$(jq -r .temperature.metadata.dateCreated.value <<<"$HTTP_BODY")" \
  "metadata dateCreated is YYYY-MM-DDThh:mm:ss.sssZ"
ngsi GET '/v2/entities/Room1?metadata=dateModified,*&attrs=temperature'
assert_json '.temperature.metadata | keys == ["accuracy", "dateModified"]' "metadata=dateModified,* shows the user metadata and dateModified"
ngsi GET /v2/entities/Room1
assert_json '[.[] | objects | .metadata | has("dateCreated") or has("dateModified")] | any | not' \
  "builtin metadata are not shown unless asked for"
assert_json 'has("dateCreated") or has("dateModified") | not' "builtin attributes are not shown unless asked for"

ngsi GET '/v2/entities/Room1?attrs=dateCreated,dateModified'
assert_json 'keys == ["dateCreated", "dateModified", "id", "type"]' "attrs=dateCreated,dateModified shows only those (and id, type)"
assert_json '.dateCreated.type == "DateTime" and .dateModified.type == "DateTime"' "builtin attributes are DateTime"
created=$(jq -r .dateCreated.value <<<"$HTTP_BODY")
modified=$(jq -r .dateModified.value <<<"$HTTP_BODY")
assert_match "$ISO_MS" "$created" "dateCreated is YYYY-MM-DDThh:mm:ss.sssZ"
assert_match "$ISO_MS" "$modified" "dateModified is YYYY-MM-DDThh:mm:ss.sssZ"
check "dateModified ($modified) is not before dateCreated ($created)" test ! "$modified" \< "$created"
ngsi GET '/v2/entities/Room1?attrs=dateModified,*&options=keyValues'
assert_json 'keys == ["dateModified", "humidity", "id", "info", "list", "name", "nothing", "open", "temperature", "type", "unit"]' \
  "attrs=dateModified,* shows every user attribute and dateModified"
ngsi_json PATCH /v2/entities/Room1/attrs '{"open": {"value": false}}'
assert_status 204 "PATCH Room1 (to see dateModified move)"
ngsi GET '/v2/entities/Room1?attrs=dateCreated,dateModified&options=keyValues'
assert_eq "$created" "$(jq -r .dateCreated <<<"$HTTP_BODY")" "an update keeps dateCreated"
check "an update does not move dateModified back" test ! "$(jq -r .dateModified <<<"$HTTP_BODY")" \< "$modified"

# ------------------------------------------------------------------ list: filters

# Five sensors, made in this order (the default order of a list).
ngsi_create '{"id": "S1", "type": "Sensor",
  "temperature": {"value": 10, "metadata": {"accuracy": {"value": 0.5}}}, "status": {"value": "ok"}, "color": {"value": "red"},
  "address": {"value": {"city": "Kanonji", "zip": 768}}, "observed": {"value": "2024-01-10T00:00:00.000Z", "type": "DateTime"},
  "enabled": {"value": true}, "code": {"value": "20"}}'
ngsi_create '{"id": "S2", "type": "Sensor",
  "temperature": {"value": 20.5, "metadata": {"accuracy": {"value": 0.9}}}, "status": {"value": "ok"}, "color": {"value": "green"},
  "address": {"value": {"city": "Takamatsu", "zip": 760}}, "observed": {"value": "2024-02-10T00:00:00.000Z", "type": "DateTime"},
  "enabled": {"value": false}, "code": {"value": 20}, "label": {"value": "light,green"}}'
ngsi_create '{"id": "S3", "type": "Sensor",
  "temperature": {"value": 30, "metadata": {"accuracy": {"value": 2}}}, "status": {"value": "fail"}, "color": {"value": "blue"},
  "observed": {"value": "2024-03-10T12:00:00.000Z", "type": "DateTime"}, "tags": {"value": ["x", "y"]}}'
ngsi_create '{"id": "S4", "type": "Sensor",
  "temperature": {"value": -5}, "color": {"value": "black"}, "observed": {"value": "2023-12-31T23:59:59.000Z", "type": "DateTime"},
  "label": {"value": "deep,blue"}, "note": {"value": null}}'
ngsi_create '{"id": "S5", "type": "Sensor", "humidity": {"value": 50}, "color": {"value": "white"}}'

ngsi GET '/v2/entities?type=Sensor'
assert_status 200 "GET /v2/entities?type=Sensor"
assert_eq "application/json" "$(header Content-Type)" "a list is application/json"
assert_ids '["S1","S2","S3","S4","S5"]' "type=Sensor lists the five sensors in creation order"
assert_jq '.[0] == {"id": "S1", "type": "Sensor",
  "temperature": {"type": "Number", "value": 10, "metadata": {"accuracy": {"type": "Number", "value": 0.5}}},
  "status": {"type": "Text", "value": "ok", "metadata": {}}, "color": {"type": "Text", "value": "red", "metadata": {}},
  "address": {"type": "StructuredValue", "value": {"city": "Kanonji", "zip": 768}, "metadata": {}},
  "observed": {"type": "DateTime", "value": "2024-01-10T00:00:00.000Z", "metadata": {}},
  "enabled": {"type": "Boolean", "value": true, "metadata": {}}, "code": {"type": "Text", "value": "20", "metadata": {}}}' \
  "$HTTP_BODY" "a listed entity is in normalized form"
ngsi GET '/v2/entities?type=Sensor,Room'
assert_ids '["Room1","Room2","Room3","S1","S2","S3","S4","S5"]' "type=Sensor,Room lists both types"
ngsi GET '/v2/entities?id=S3,S1,Room2'
assert_ids '["Room2","S1","S3"]' "id=S3,S1,Room2 lists those three (in creation order)"
ngsi GET '/v2/entities?id=S3,S1&type=Room'
assert_ids '[]' "id= and type= are combined (AND)"
ngsi_get /v2/entities 'idPattern=^S[24]$'
assert_ids '["S2","S4"]' "idPattern=^S[24]\$"
ngsi_get /v2/entities 'typePattern=^Sen'
assert_ids '["S1","S2","S3","S4","S5"]' "typePattern=^Sen"
ngsi_get /v2/entities 'typePattern=^(Room|Uniq)$' 'idPattern=[13]$'
assert_ids '["Room1","Room3","U1"]' "idPattern and typePattern together"
ngsi GET '/v2/entities?type=Sensor&options=keyValues&attrs=color'
assert_json '. == [{"id": "S1", "type": "Sensor", "color": "red"}, {"id": "S2", "type": "Sensor", "color": "green"},
  {"id": "S3", "type": "Sensor", "color": "blue"}, {"id": "S4", "type": "Sensor", "color": "black"},
  {"id": "S5", "type": "Sensor", "color": "white"}]' "list with options=keyValues and attrs=color"
ngsi GET '/v2/entities?type=Sensor&options=values&attrs=color,status'
assert_json '. == [["red", "ok"], ["green", "ok"], ["blue", "fail"], ["black"], ["white"]]' "list with options=values"

# q_is Q EXPECTED_IDS: GET /v2/entities?type=Sensor&q=Q lists EXPECTED_IDS.
q_is() {
  ngsi_get /v2/entities type=Sensor "q=$1"
  assert_status 200 "q=$1: status"
  assert_ids "$2" "q=$1"
}
# mq_is MQ EXPECTED_IDS
mq_is() {
  ngsi_get /v2/entities type=Sensor "mq=$1"
  assert_status 200 "mq=$1: status"
  assert_ids "$2" "mq=$1"
}
q_is 'temperature==20.5' '["S2"]'
q_is 'temperature:20.5' '["S2"]'
q_is 'temperature==10' '["S1"]'
q_is 'temperature==-5' '["S4"]'
q_is 'temperature!=20.5' '["S1","S3","S4"]'
q_is 'temperature>10' '["S2","S3"]'
q_is 'temperature>=10' '["S1","S2","S3"]'
q_is 'temperature<10' '["S4"]'
q_is 'temperature<=10' '["S1","S4"]'
q_is 'temperature==10..25' '["S1","S2"]'
q_is 'temperature!=10..25' '["S3","S4"]'
q_is 'temperature==10,30' '["S1","S3"]'
q_is 'color==red,green' '["S1","S2"]'
q_is 'color!=red,green' '["S3","S4","S5"]'
q_is 'color==black' '["S4"]'
q_is 'color==a..c' '["S3","S4"]'
q_is 'color~=^bl' '["S3","S4"]'
q_is 'color~=e' '["S1","S2","S3","S5"]'
q_is 'status==ok;temperature>15' '["S2"]'
q_is 'status==ok;color!=red' '["S2"]'
q_is 'temperature' '["S1","S2","S3","S4"]'
q_is '!temperature' '["S5"]'
q_is '!status' '["S4","S5"]'
q_is 'status;!label' '["S1","S3"]'
q_is 'address.city==Kanonji' '["S1"]'
q_is 'address.zip>765' '["S1"]'
q_is 'address.zip==700..765' '["S2"]'
q_is 'address.city' '["S1","S2"]'
q_is '!address.city' '["S3","S4","S5"]'
q_is 'observed>2024-01-31' '["S2","S3"]'
q_is 'observed>=2024-02-10T00:00:00Z' '["S2","S3"]'
q_is 'observed<2024-01-01T00:00:00Z' '["S4"]'
q_is 'observed==2024-01-01..2024-02-28T00:00:00Z' '["S1","S2"]'
q_is 'observed<2024-03-10T13:00:00+02:00' '["S1","S2","S4"]'
q_is "code=='20'" '["S1"]'
q_is 'code==20' '["S2"]'
q_is "label=='light,green','deep,blue'" '["S2","S4"]'
q_is "label=='light,green'" '["S2"]'
q_is 'enabled==true' '["S1"]'
q_is 'enabled==false' '["S2"]'
q_is 'tags==y' '["S3"]'
q_is 'tags==z,x' '["S3"]'
q_is 'note==null' '["S4"]'
q_is 'dateCreated>2000-01-01T00:00:00Z' '["S1","S2","S3","S4","S5"]'
q_is 'dateCreated<2000-01-01T00:00:00Z' '[]'
q_is 'dateModified>2000-01-01' '["S1","S2","S3","S4","S5"]'
mq_is 'temperature.accuracy<1' '["S1","S2"]'
mq_is 'temperature.accuracy==2' '["S3"]'
mq_is 'temperature.accuracy' '["S1","S2","S3"]'
mq_is 'temperature.accuracy>=0.9;color.nosuch' '[]'
ngsi_get /v2/entities type=Sensor 'q=temperature>0' 'mq=temperature.accuracy>0.6'
assert_ids '["S2","S3"]' "q and mq together"
ngsi_get /v2/entities 'q=temperature>15' 'idPattern=^S'
assert_ids '["S2","S3"]' "q with idPattern (without type=)"

# ------------------------------------------------------------------ list: pages and order

# 25 items in one batch, in this order; n is a permutation of 0..24, g a group.
items=$(jq -nc '{actionType: "append", entities: [range(1; 26) as $i |
  {id: ("I" + (if $i < 10 then "0" else "" end) + ($i | tostring)), type: "Item",
   n: {value: (($i * 7) % 25)}, g: {value: ($i % 3)}}]}')
ngsi_json POST /v2/op/update "$items"
assert_status 204 "POST /v2/op/update appends 25 items"
all_items=$(jq -c '[.entities[].id]' <<<"$items")

ngsi GET '/v2/entities?type=Item'
assert_eq "$(jq -c '.[:20]' <<<"$all_items")" "$(ids)" "without limit: the first 20 items, in creation order"
assert_eq "" "$(header Fiware-Total-Count)" "no Fiware-Total-Count without options=count"
ngsi GET '/v2/entities?type=Item&options=count'
assert_eq 25 "$(header Fiware-Total-Count)" "options=count: Fiware-Total-Count is 25"
assert_json 'length == 20' "options=count does not change the page (20 items)"
ngsi GET '/v2/entities?type=Item&limit=1000'
assert_eq "$all_items" "$(ids)" "limit=1000: every item"
ngsi GET '/v2/entities?type=Item&limit=1'
assert_ids '["I01"]' "limit=1"
ngsi GET '/v2/entities?type=Item&limit=1001'
assert_error 400 BadRequest "limit=1001"
for bad in 0 -1 abc 1.5 ''; do
  ngsi GET "/v2/entities?type=Item&limit=$bad"
  assert_error 400 BadRequest "limit=$bad"
done
for bad in -1 abc; do
  ngsi GET "/v2/entities?type=Item&offset=$bad"
  assert_error 400 BadRequest "offset=$bad"
done
ngsi GET '/v2/entities?type=Item&offset=30&options=count'
assert_json '. == []' "offset past the end: []"
assert_eq 25 "$(header Fiware-Total-Count)" "offset past the end: the count is still 25"

# Pages of 10 walk the items once each, in creation order; an update in the
# middle of the walk does not move an entity.
ngsi GET '/v2/entities?type=Item&limit=10&offset=0'
pages=$(ids)
ngsi_json PATCH /v2/entities/I03/attrs '{"n": {"value": 100}}'
assert_status 204 "PATCH I03 between two pages"
ngsi GET '/v2/entities?type=Item&limit=10&offset=10'
pages=$(jq -cn --argjson a "$pages" --argjson b "$(ids)" '$a + $b')
ngsi GET '/v2/entities?type=Item&limit=10&offset=20'
assert_json 'length == 5' "the third page holds 5 items"
pages=$(jq -cn --argjson a "$pages" --argjson b "$(ids)" '$a + $b')
assert_eq "$all_items" "$pages" "three pages of 10 give the 25 items once each, in creation order"
ngsi GET '/v2/entities?type=Item&limit=1000'
assert_eq "$all_items" "$(ids)" "an updated entity keeps its place in the default order"
ngsi_json PATCH /v2/entities/I03/attrs '{"n": {"value": 21}}'
assert_status 204 "PATCH I03 back to n=21"

by_n=$(jq -c '[.entities[] | {id, n: .n.value}] | sort_by(.n) | map(.id)' <<<"$items")
ngsi GET '/v2/entities?type=Item&orderBy=n&limit=1000'
assert_eq "$by_n" "$(ids)" "orderBy=n: ascending n"
ngsi GET '/v2/entities?type=Item&orderBy=!n&limit=1000'
assert_eq "$(jq -c reverse <<<"$by_n")" "$(ids)" "orderBy=!n: descending n"
ngsi GET '/v2/entities?type=Item&orderBy=n&limit=5&offset=5'
assert_eq "$(jq -c '.[5:10]' <<<"$by_n")" "$(ids)" "orderBy=n with limit and offset: the second page of five"
ngsi GET '/v2/entities?type=Item&orderBy=g,!n&limit=1000'
assert_eq "$(jq -c '[.entities[] | {id, n: .n.value, g: .g.value}] | sort_by([.g, -.n]) | map(.id)' <<<"$items")" "$(ids)" \
  "orderBy=g,!n: by g, ties by descending n"
ngsi GET '/v2/entities?type=Item&orderBy=!id&limit=1000'
assert_eq "$(jq -c 'sort | reverse' <<<"$all_items")" "$(ids)" "orderBy=!id"
ngsi GET '/v2/entities?idPattern=^(S|Room)&orderBy=id&limit=1000'
assert_ids '["Room1","Room2","Room3","S1","S2","S3","S4","S5"]' "orderBy=id"
# Three entities made apart in time, newest last.
for e in Ev1 Ev2 Ev3; do
  ngsi_create "{\"id\": \"$e\", \"type\": \"Ev\", \"k\": {\"value\": 1}}"
  sleep 0.05
done
ngsi GET '/v2/entities?type=Ev&orderBy=dateCreated'
assert_ids '["Ev1","Ev2","Ev3"]' "orderBy=dateCreated"
ngsi GET '/v2/entities?type=Ev&orderBy=!dateCreated'
assert_ids '["Ev3","Ev2","Ev1"]' "orderBy=!dateCreated"
ngsi_json PATCH /v2/entities/Ev1/attrs '{"k": {"value": 2}}'
assert_status 204 "PATCH Ev1 (the newest change)"
ngsi GET '/v2/entities?type=Ev&orderBy=!dateModified'
assert_jq '.[0].id == "Ev1"' "$HTTP_BODY" "orderBy=!dateModified puts the last modified first"

# ------------------------------------------------------------------ attributes

ngsi_create '{"id": "Car1", "type": "Car",
  "speed": {"value": 80, "metadata": {"accuracy": {"value": 2}}}, "fuel": {"value": "diesel"},
  "owner": {"value": {"name": "Sato"}}, "flag": {"value": true}, "nil": {"value": null}}'
ngsi GET /v2/entities/Car1/attrs
assert_status 200 "GET /v2/entities/Car1/attrs"
assert_json '. == {"speed": {"type": "Number", "value": 80, "metadata": {"accuracy": {"type": "Number", "value": 2}}},
  "fuel": {"type": "Text", "value": "diesel", "metadata": {}}, "owner": {"type": "StructuredValue", "value": {"name": "Sato"}, "metadata": {}},
  "flag": {"type": "Boolean", "value": true, "metadata": {}}, "nil": {"type": "None", "value": null, "metadata": {}}}' \
  "GET .../attrs: the attributes without id and type"
ngsi GET '/v2/entities/Car1/attrs?options=keyValues&attrs=speed,fuel'
assert_json '. == {"speed": 80, "fuel": "diesel"}' "GET .../attrs?options=keyValues&attrs=speed,fuel"
ngsi GET /v2/entities/NoSuch/attrs
assert_error 404 NotFound "GET /attrs of a missing entity"

ngsi_json POST /v2/entities/Car1/attrs '{"color": {"value": "red"}, "speed": {"value": 90}}'
assert_status 204 "POST .../attrs appends color and updates speed"
ngsi GET '/v2/entities/Car1?options=keyValues&attrs=color,speed'
assert_json '. == {"id": "Car1", "type": "Car", "color": "red", "speed": 90}' "POST .../attrs took effect"
ngsi_json POST '/v2/entities/Car1/attrs?options=append' '{"speed": {"value": 1}}'
assert_error 422 Unprocessable "POST .../attrs?options=append of an existing attribute"
assert_match 'speed' "$(jq -r .description <<<"$HTTP_BODY")" "the description names speed"
ngsi_json POST '/v2/entities/Car1/attrs?options=append' '{"mileage": {"value": 100}}'
assert_status 204 "POST .../attrs?options=append of a new attribute"
ngsi GET '/v2/entities/Car1?options=keyValues&attrs=speed,mileage'
assert_json '. == {"id": "Car1", "type": "Car", "speed": 90, "mileage": 100}' "strict append: speed unchanged, mileage added"
ngsi_json POST /v2/entities/NoSuch/attrs '{"a": {"value": 1}}'
assert_error 404 NotFound "POST .../attrs of a missing entity"

ngsi_json PATCH /v2/entities/Car1/attrs '{"speed": {"value": 100}}'
assert_status 204 "PATCH .../attrs of an existing attribute"
ngsi_json PATCH /v2/entities/Car1/attrs '{"nope": {"value": 1}}'
assert_error 422 Unprocessable "PATCH .../attrs of a missing attribute"
assert_match 'do not exist' "$(jq -r .description <<<"$HTTP_BODY")" "the description says the attribute does not exist"
assert_match 'nope' "$(jq -r .description <<<"$HTTP_BODY")" "the description names it"
ngsi_json PATCH /v2/entities/Car1/attrs '{"speed": {"value": 110}, "nope": {"value": 1}}'
assert_error 422 PartialUpdate "PATCH .../attrs of one existing and one missing attribute"
ngsi GET '/v2/entities/Car1?options=keyValues&attrs=speed,nope'
assert_json '. == {"id": "Car1", "type": "Car", "speed": 110}' "the partial PATCH updated speed and created nothing"
ngsi_json PATCH /v2/entities/NoSuch/attrs '{"a": {"value": 1}}'
assert_error 404 NotFound "PATCH .../attrs of a missing entity"

ngsi_json PUT /v2/entities/Car1/attrs '{"only": {"value": 1}, "fuel": {"value": "petrol"}}'
assert_status 204 "PUT .../attrs replaces the attributes"
ngsi GET /v2/entities/Car1/attrs
assert_json '. == {"only": {"type": "Number", "value": 1, "metadata": {}}, "fuel": {"type": "Text", "value": "petrol", "metadata": {}}}' \
  "after PUT .../attrs only the new attributes are left"

ngsi GET /v2/entities/Car1/attrs/only
assert_status 200 "GET .../attrs/only"
assert_json '. == {"type": "Number", "value": 1, "metadata": {}}' "an attribute alone"
ngsi GET '/v2/entities/Car1/attrs/only?metadata=dateCreated'
assert_json '.metadata | keys == ["dateCreated"]' "GET .../attrs/only?metadata=dateCreated"
ngsi GET /v2/entities/Car1/attrs/missing
assert_error 404 NotFound "GET .../attrs/missing"
ngsi GET /v2/entities/NoSuch/attrs/only
assert_error 404 NotFound "GET .../attrs/only of a missing entity"
ngsi_json PUT /v2/entities/Car1/attrs/only '{"value": 2, "type": "Integer", "metadata": {"unit": {"value": "km"}}}'
assert_status 204 "PUT .../attrs/only"
ngsi GET /v2/entities/Car1/attrs/only
assert_json '. == {"type": "Integer", "value": 2, "metadata": {"unit": {"type": "Text", "value": "km"}}}' "PUT .../attrs/only replaced the attribute"
ngsi_json PUT /v2/entities/Car1/attrs/missing '{"value": 1}'
assert_error 404 NotFound "PUT .../attrs/missing"
ngsi GET /v2/entities/Car1/attrs/missing
assert_error 404 NotFound "PUT .../attrs/missing created nothing"
ngsi DELETE /v2/entities/Car1/attrs/only
assert_status 204 "DELETE .../attrs/only"
ngsi GET /v2/entities/Car1/attrs/only
assert_error 404 NotFound "the deleted attribute is gone"
ngsi DELETE /v2/entities/Car1/attrs/only
assert_error 404 NotFound "DELETE .../attrs/only again"

# /value: a simple value is text/plain (strings in quotes), an object JSON.
ngsi_json POST /v2/entities/Car1/attrs \
  '{"speed": {"value": 100}, "owner": {"value": {"name": "Sato"}}, "flag": {"value": true}, "nil": {"value": null}, "tags": {"value": ["a", 1]}}'
assert_status 204 "POST .../attrs: attributes for /value"
value_is() { # ATTR ACCEPT EXPECTED_BODY EXPECTED_CONTENT_TYPE_REGEX
  ngsi GET "/v2/entities/Car1/attrs/$1/value" -H "Accept: $2"
  assert_status 200 "GET .../attrs/$1/value (Accept: $2)"
  assert_eq "$3" "$HTTP_BODY" "GET .../attrs/$1/value (Accept: $2): body"
  assert_match "$4" "$(header Content-Type)" "GET .../attrs/$1/value (Accept: $2): Content-Type"
}
value_is fuel text/plain '"petrol"' '^text/plain'
value_is fuel '*/*' '"petrol"' '^text/plain'
value_is speed text/plain 100 '^text/plain'
value_is flag text/plain true '^text/plain'
value_is nil text/plain null '^text/plain'
value_is owner application/json '{"name":"Sato"}' '^application/json$'
value_is owner '*/*' '{"name":"Sato"}' '^application/json$'
value_is tags application/json '["a",1]' '^application/json$'
ngsi GET /v2/entities/Car1/attrs/fuel/value -H 'Accept: application/json'
assert_error 406 NotAcceptable "GET .../attrs/fuel/value (a string) with Accept: application/json"
ngsi GET /v2/entities/Car1/attrs/missing/value -H 'Accept: text/plain'
assert_error 404 NotFound "GET .../attrs/missing/value"

put_text() { # ATTR BODY
  ngsi PUT "/v2/entities/Car1/attrs/$1/value" -H 'Content-Type: text/plain' --data-binary "$2"
}
put_text fuel '"gas"'
assert_status 204 "PUT .../attrs/fuel/value text/plain \"gas\""
put_text speed 42
assert_status 204 "PUT .../attrs/speed/value text/plain 42"
put_text flag false
assert_status 204 "PUT .../attrs/flag/value text/plain false"
put_text nil null
assert_status 204 "PUT .../attrs/nil/value text/plain null"
ngsi GET '/v2/entities/Car1?options=keyValues&attrs=fuel,speed,flag,nil'
assert_json '. == {"id": "Car1", "type": "Car", "fuel": "gas", "speed": 42, "flag": false, "nil": null}' \
  "text/plain values: a quoted string, a number, a boolean, null"
put_text speed 'fast'
assert_error 400 BadRequest "PUT .../value text/plain neither quoted, boolean, null nor a number"
ngsi GET /v2/entities/Car1/attrs/speed/value -H 'Accept: text/plain'
assert_eq 42 "$HTTP_BODY" "the refused text/plain value left speed unchanged"
ngsi_json PUT /v2/entities/Car1/attrs/owner/value '{"name": "Suzuki", "since": 2020}'
assert_status 204 "PUT .../attrs/owner/value application/json (an object)"
ngsi_json PUT /v2/entities/Car1/attrs/tags/value '["b", 2]'
assert_status 204 "PUT .../attrs/tags/value application/json (an array)"
ngsi GET '/v2/entities/Car1?options=keyValues&attrs=owner,tags'
assert_json '. == {"id": "Car1", "type": "Car", "owner": {"name": "Suzuki", "since": 2020}, "tags": ["b", 2]}' "JSON values set"
put_text missing 1
assert_error 404 NotFound "PUT .../attrs/missing/value"

# ------------------------------------------------------------------ delete

ngsi DELETE /v2/entities/Car1
assert_status 204 "DELETE /v2/entities/Car1"
ngsi GET /v2/entities/Car1
assert_error 404 NotFound "the deleted entity is gone"
ngsi DELETE /v2/entities/Car1
assert_error 404 NotFound "DELETE of a missing entity"
ngsi DELETE /v2/entities/Twin
assert_error 409 TooManyResults "DELETE /v2/entities/Twin without type"
ngsi DELETE '/v2/entities/Twin?type=A'
assert_status 204 "DELETE /v2/entities/Twin?type=A"
ngsi GET /v2/entities/Twin
assert_json '.type == "B"' "Twin of type B is left"

# ------------------------------------------------------------------ types

ngsi_create '{"id": "Mix1", "type": "Mix", "v": {"value": 1}, "w": {"value": "a"}}'
ngsi_create '{"id": "Mix2", "type": "Mix", "v": {"value": "x"}}'
ngsi GET /v2/types/Mix
assert_status 200 "GET /v2/types/Mix"
assert_json '(.attrs.v.types | sort) == ["Number", "Text"] and .attrs.w.types == ["Text"] and .count == 2 and (keys == ["attrs", "count"]) and (.attrs | keys == ["v", "w"])' \
  "GET /v2/types/Mix: the attributes with the types they have, and the count"
ngsi GET /v2/types/NoSuchType
assert_error 404 NotFound "GET /v2/types/NoSuchType"
ngsi GET '/v2/entities?type=Thing&options=count&limit=1'
things=$(header Fiware-Total-Count)
# Car1 was deleted, Twin of type A too: no entity of type Car or A is left.
all_types='["B","Ev","Item","Mix","Room","Sensor","Thing","Uniq"]'
ngsi GET '/v2/types?options=values'
assert_status 200 "GET /v2/types?options=values"
assert_json ". == $all_types" "options=values: the type names, in alphabetical order (types without entities left out)"
ngsi GET '/v2/types?options=count'
assert_eq 8 "$(header Fiware-Total-Count)" "GET /v2/types?options=count counts 8 types"
assert_json '[.[].type] == '"$all_types" "GET /v2/types: one object per type, alphabetical"
assert_json 'all(.[]; keys == ["attrs", "count", "type"])' "each type has type, attrs and count"
# shellcheck disable=SC2016 # $s is jq's
assert_json '(.[] | select(.type == "Sensor")) as $s | $s.count == 5 and $s.attrs.temperature.types == ["Number"] and $s.attrs.observed.types == ["DateTime"] and $s.attrs.address.types == ["StructuredValue"] and ($s.attrs.code.types | sort) == ["Number", "Text"] and ($s.attrs | keys | length) == 11' \
  "the Sensor type: 5 entities, 11 attribute names with their types"
assert_json "(.[] | select(.type == \"Thing\")).count == $things" "the Thing type's count matches a count of its entities"
ngsi GET '/v2/types?options=values&limit=2&offset=1'
assert_json '. == ["Ev", "Item"]' "GET /v2/types with limit and offset"

# ------------------------------------------------------------------ op/update

op() { # ACTION ENTITIES_JSON [QUERY]
  ngsi_json POST "/v2/op/update${3:-}" "{\"actionType\": \"$1\", \"entities\": $2}"
}
kv() { # ID: the entity in keyValues (or the error)
  ngsi GET "/v2/entities/$1?options=keyValues"
}
op append '[{"id": "B1", "type": "Batch", "x": {"value": 1}}, {"id": "B2", "type": "Batch", "x": {"value": 2}}]'
assert_status 204 "op/update append of two new entities"
op append '[{"id": "B1", "type": "Batch", "x": {"value": 10}, "y": {"value": 5}}]'
assert_status 204 "op/update append to an existing entity"
kv B1
assert_json '. == {"id": "B1", "type": "Batch", "x": 10, "y": 5}' "append updated x and added y"
op appendStrict '[{"id": "B1", "type": "Batch", "x": {"value": 99}}]'
assert_error 422 Unprocessable "op/update appendStrict of an existing attribute"
assert_match 'already exist' "$(jq -r .description <<<"$HTTP_BODY")" "the description says the attribute already exists"
op appendStrict '[{"id": "B3", "type": "Batch", "x": {"value": 3}}, {"id": "B1", "type": "Batch", "x": {"value": 99}}]'
assert_error 422 PartialUpdate "op/update appendStrict: one new entity, one existing attribute"
kv B3
assert_json '. == {"id": "B3", "type": "Batch", "x": 3}' "the new entity was created"
kv B1
assert_json '.x == 10' "the existing attribute kept its value"
op update '[{"id": "B1", "type": "Batch", "x": {"value": 11}}, {"id": "B2", "type": "Batch", "x": {"value": 22}}]'
assert_status 204 "op/update update"
kv B2
assert_json '.x == 22' "update changed B2"
op update '[{"id": "B1", "type": "Batch", "x": {"value": 12}}, {"id": "B9", "type": "Batch", "x": {"value": 9}}]'
assert_error 422 PartialUpdate "op/update update of one existing and one missing entity"
assert_match 'B9' "$(jq -r .description <<<"$HTTP_BODY")" "the description names B9"
kv B1
assert_json '.x == 12' "the existing entity was updated"
kv B9
assert_error 404 NotFound "update did not create B9"
op update '[{"id": "B8", "type": "Batch", "x": {"value": 8}}, {"id": "B9", "type": "Batch", "x": {"value": 9}}]'
assert_error 404 NotFound "op/update update where no entity exists"
op update '[{"id": "B1", "type": "Batch", "zz": {"value": 1}}]'
assert_error 422 Unprocessable "op/update update of a missing attribute"
assert_match 'do not exist' "$(jq -r .description <<<"$HTTP_BODY")" "the description says it does not exist"
op replace '[{"id": "B2", "type": "Batch", "z": {"value": 0}}]'
assert_status 204 "op/update replace"
kv B2
assert_json '. == {"id": "B2", "type": "Batch", "z": 0}' "replace left only z"
op delete '[{"id": "B1", "type": "Batch", "y": {}}]'
assert_status 204 "op/update delete of an attribute"
kv B1
assert_json '. == {"id": "B1", "type": "Batch", "x": 12}' "delete removed y only"
op delete '[{"id": "B2", "type": "Batch"}]'
assert_status 204 "op/update delete of an entity"
kv B2
assert_error 404 NotFound "the deleted entity is gone"
op append '[{"id": "B4", "type": "Batch", "x": 4, "s": "t"}]' '?options=keyValues'
assert_status 204 "op/update append with options=keyValues"
ngsi GET /v2/entities/B4
assert_json '. == {"id": "B4", "type": "Batch", "x": {"type": "Number", "value": 4, "metadata": {}}, "s": {"type": "Text", "value": "t", "metadata": {}}}' \
  "keyValues batch: default types"
op upsert '[{"id": "B5", "type": "Batch"}]'
assert_error 400 BadRequest "op/update with an unknown actionType"

# ------------------------------------------------------------------ op/query

ngsi_json POST /v2/op/query '{"entities": [{"idPattern": "^S", "type": "Sensor"}], "attrs": ["temperature"], "expression": {"q": "temperature>15"}}'
assert_status 200 "POST /v2/op/query"
assert_json '. == [{"id": "S2", "type": "Sensor", "temperature": {"type": "Number", "value": 20.5, "metadata": {"accuracy": {"type": "Number", "value": 0.9}}}},
  {"id": "S3", "type": "Sensor", "temperature": {"type": "Number", "value": 30, "metadata": {"accuracy": {"type": "Number", "value": 2}}}}]' \
  "op/query: entities, attrs and expression.q"
ngsi_json POST '/v2/op/query?options=count&limit=1' '{"entities": [{"idPattern": "^S", "type": "Sensor"}], "expression": {"q": "temperature>15"}}'
assert_eq 2 "$(header Fiware-Total-Count)" "op/query?options=count counts 2"
assert_ids '["S2"]' "op/query with limit=1"
ngsi_json POST '/v2/op/query?options=keyValues' '{"entities": [{"id": "S4"}, {"id": "S1", "type": "Sensor"}], "attrs": ["color"]}'
assert_json '. == [{"id": "S1", "type": "Sensor", "color": "red"}, {"id": "S4", "type": "Sensor", "color": "black"}]' \
  "op/query of two ids (one with type), keyValues"
ngsi_json POST /v2/op/query '{"entities": [{"idPattern": ".*", "type": "Sensor"}], "expression": {"mq": "temperature.accuracy>=0.9"}, "attrs": ["color"]}'
assert_ids '["S2","S3"]' "op/query with expression.mq"
ngsi_json POST '/v2/op/query?orderBy=!temperature&options=values' '{"entities": [{"idPattern": ".*", "type": "Sensor"}], "attrs": ["temperature"], "expression": {"q": "temperature"}}'
assert_json '. == [[30], [20.5], [10], [-5]]' "op/query with orderBy and options=values"
ngsi_json POST '/v2/op/query?options=count' '{"entities": [{"typePattern": "^Mi"}], "metadata": ["dateCreated"], "attrs": ["w"]}'
assert_eq 2 "$(header Fiware-Total-Count)" "op/query with typePattern"
assert_json '.[0].w.metadata | keys == ["dateCreated"]' "op/query with metadata"

# ------------------------------------------------------------------ entry points and headers

http GET /version
assert_status 200 "GET /version without a token"
assert_eq "application/json" "$(header Content-Type)" "/version is application/json"
assert_json '.orion | (.version | test("^[0-9]+\\.[0-9]+\\.[0-9]+")) and (.uptime | test("^[0-9]+ d, [0-9]+ h, [0-9]+ m, [0-9]+ s$"))' \
  "/version: orion.version and orion.uptime as Orion prints them"
assert_json '.orion | [.git_hash, .compile_time, .compiled_by, .compiled_in, .release_date, .machine, .doc] | all(type == "string")' \
  "/version has Orion's fields (git_hash, compile_time, compiled_by, compiled_in, release_date, machine, doc)"
assert_json '.orion.libversions | type == "object"' "/version has orion.libversions"

ngsi GET /v2
assert_status 200 "GET /v2"
assert_json '. == {"entities_url": "/v2/entities", "types_url": "/v2/types", "subscriptions_url": "/v2/subscriptions", "registrations_url": "/v2/registrations"}' \
  "GET /v2: the four entry points of the NGSI-v2 specification"

ngsi GET /v2/entities -H 'Fiware-Correlator: test-corr-0001'
assert_eq "test-corr-0001" "$(header Fiware-Correlator)" "Fiware-Correlator is echoed"
ngsi GET /v2/entities/NoSuch -H 'Fiware-Correlator: test-corr-0002'
assert_eq "test-corr-0002" "$(header Fiware-Correlator)" "Fiware-Correlator is echoed on an error too"
ngsi GET /v2/entities
c1=$(header Fiware-Correlator)
assert_match "$UUID" "$c1" "without Fiware-Correlator the hub makes one (a UUID)"
ngsi_json POST /v2/entities '{"id": "Corr", "type": "T"}'
c2=$(header Fiware-Correlator)
assert_match "$UUID" "$c2" "a POST gets a correlator too"
assert_ne "$c1" "$c2" "each request gets its own correlator"
http GET /version
assert_match "$UUID" "$(header Fiware-Correlator)" "/version carries a correlator"

ngsi_finish
